/**
 * Seed 000: a single-node, disk-backed job queue: jobs in memory for speed, every change appended
 * to a log file, a handler registry, a pool of workers, and crash recovery.
 *
 * To show the recovery, this program first runs itself as a child process that starts a heavy
 * task and is killed with SIGKILL mid-task. It then opens the same log: the interrupted job goes
 * back to pending (the crash counted as an attempt) and runs again, next to new jobs.
 * Run: npx tsx examples/seed-000/index.ts
 */
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { jobHandlers } from './jobHandlers.js'
import { createJobQueue } from './queue.js'

if (process.argv[2] === 'child') {
	// The process that crashes: it starts the heavy task, then dies without warning.
	const queue = createJobQueue({ storagePath: process.argv[3]!, workerCount: 3 }, jobHandlers)
	await queue.enqueue('heavy_task', { duration: 300 }, { id: 'unique-job-id-123', maxAttempts: 3 })
	queue.on('started', () => process.stdout.write('running\n'))
} else {
	const dir = mkdtempSync(join(tmpdir(), 'spool-seed-000-'))
	const storagePath = join(dir, '.queue', 'jobs.log')

	const child = spawn(process.execPath, [...process.execArgv, import.meta.filename, 'child', storagePath], {
		stdio: ['ignore', 'pipe', 'inherit'],
	})
	await new Promise<void>((resolve) =>
		child.stdout.on('data', (d: Buffer) => d.includes('running') && resolve()),
	)
	child.kill('SIGKILL')
	await new Promise((r) => child.once('exit', r))
	console.log('The worker process was killed mid-task; restarting from the log.')

	const queue = createJobQueue({ storagePath, workerCount: 3 }, jobHandlers)
	await queue.enqueue('send_email', { to: 'user@example.com' }, { id: 'job-1', maxAttempts: 3 })
	await queue.enqueue('resize_image', { file: 'avatar.png', width: 300 }, { id: 'job-2', maxAttempts: 3 })

	const emailed = await queue.result('job-1')
	await queue.result('job-2')
	await queue.result('unique-job-id-123')
	const heavy = await queue.getJob('unique-job-id-123')
	console.log('job-1:', emailed)
	console.log(`heavy task: ${heavy?.status} on attempt ${heavy?.attempt} (the crash counted as one)`)
	await queue.close()
	rmSync(dir, { recursive: true, force: true })
	if (heavy?.status !== 'completed' || heavy.attempt !== 2) process.exit(1)
}
