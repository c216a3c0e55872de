/** One job's logic, testable on its own (seed 000's src/jobs/sendEmail.ts). */
export async function sendEmail(payload: { to: string }): Promise<{ sent: string }> {
	console.log('Sending email to', payload.to)
	return { sent: payload.to }
}
