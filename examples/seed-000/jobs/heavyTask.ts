/** A slow job (seed 000's src/jobs/heavyTask.ts). */
export async function heavyTask(payload: { duration: number }): Promise<void> {
	console.log(`Starting heavy task (${payload.duration} ms)...`)
	await new Promise((r) => setTimeout(r, payload.duration))
}
