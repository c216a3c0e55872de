/**
 * Makes docs/dashboard.png: runs the demo (`--stay`, so new jobs keep coming), lets the chart fill
 * for a while, and photographs the overview in chromium.
 *
 *   npm run build:ui && tsx scripts/dashboard-screenshot.ts
 */
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { chromium } from 'playwright-core'

const root = join(import.meta.dirname, '..')
const child = spawn(process.execPath, ['--import', 'tsx', 'examples/demo.ts', '--stay', '--jobs', '600'], {
	cwd: root,
	env: { ...process.env, PORT: process.env.PORT ?? '4399' },
	stdio: ['ignore', 'pipe', 'inherit'],
})
let out = ''
const url = await new Promise<string>((resolve, reject) => {
	child.stdout.on('data', (d: Buffer) => {
		out += d.toString()
		const m = /Dashboard: (\S+)/.exec(out)
		if (m) resolve(m[1]!)
	})
	child.once('exit', () => reject(new Error(`the demo exited:\n${out}`)))
})
await new Promise((r) => setTimeout(r, Number(process.env.WAIT_MS ?? 40_000)))
const browser = await chromium.launch({
	executablePath: '/usr/bin/chromium',
	args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
})
const page = await browser.newPage({ viewport: { width: 1280, height: 800 }, deviceScaleFactor: 1 })
await page.goto(url)
await page.locator('tr[data-name="send-email"]').waitFor()
await new Promise((r) => setTimeout(r, 2500))
await page.screenshot({ path: join(root, 'docs', 'dashboard.png') })
await browser.close()
child.kill('SIGTERM')
console.log('wrote docs/dashboard.png')
