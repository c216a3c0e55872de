/**
 * Child processes for multi-process and crash tests: real `node` processes running a TypeScript
 * fixture through tsx, killed for real.
 */
import { type ChildProcess, spawn } from 'node:child_process'

/** Starts `node --import tsx <script> ...args`; stdout/stderr go to the test's output on failure. */
export function startChild(
	script: string,
	args: string[],
	env: Record<string, string> = {},
): ChildProcess & { output: string[] } {
	const child = spawn(process.execPath, ['--import', 'tsx', script, ...args], {
		env: { ...process.env, ...env },
		stdio: ['ignore', 'pipe', 'pipe'],
	}) as ChildProcess & { output: string[] }
	child.output = []
	child.stdout?.on('data', (d: Buffer) => child.output.push(d.toString()))
	child.stderr?.on('data', (d: Buffer) => child.output.push(d.toString()))
	return child
}

/** Resolves when the child has exited, with its exit code or signal. */
export function exited(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
	if (child.exitCode !== null || child.signalCode !== null) {
		return Promise.resolve({ code: child.exitCode, signal: child.signalCode })
	}
	return new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })))
}

/** Resolves when the child prints a line containing `text`. */
export function printed(child: ChildProcess & { output: string[] }, text: string): Promise<void> {
	return new Promise((resolve, reject) => {
		const check = () => {
			if (child.output.join('').includes(text)) {
				child.stdout?.off('data', check)
				resolve()
			}
		}
		child.stdout?.on('data', check)
		child.once('exit', () =>
			reject(new Error(`child exited before printing '${text}':\n${child.output.join('')}`)),
		)
		check()
	})
}

/** Polls `fn` until it returns true, or fails after `timeoutMs`. */
export async function until(
	fn: () => Promise<boolean> | boolean,
	timeoutMs: number,
	what: string,
): Promise<void> {
	const end = Date.now() + timeoutMs
	while (!(await fn())) {
		if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
		await new Promise((r) => setTimeout(r, 50))
	}
}
