/**
 * The registry: job types (the string intent stored with each job) mapped to the functions that
 * run them. Jobs are data; handlers are code.
 */
import { heavyTask } from './jobs/heavyTask.js'
import { sendEmail } from './jobs/sendEmail.js'

export const jobHandlers = {
	send_email: sendEmail,
	heavy_task: heavyTask,
	resize_image: async (payload: { file: string; width: number }) => {
		console.log(`Resizing ${payload.file} to ${payload.width}px...`)
	},
}
