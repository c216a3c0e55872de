/**
 * The dashboard UI in a real browser: playwright-core driving Debian's chromium against a real
 * SQLite queue with jobs in every state. Saves screenshots to test-artifacts/.
 */
import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { type Browser, chromium, type Page } from 'playwright-core'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { type DashboardServer, serveDashboard } from '../../src/dashboard/index.js'
import { EVIL, type Seeded, seedQueue } from './fixture.js'

const root = join(import.meta.dirname, '..', '..')
const artifacts = join(root, 'test-artifacts')
const TOKEN = 'browser-token-123456'
const CHROMIUM_ARGS = [
	'--headless',
	'--no-sandbox',
	'--disable-gpu',
	'--disable-quic',
	'--no-first-run',
	'--disable-background-networking',
	'--disable-component-update',
	'--disable-sync',
]

let seeded: Seeded
let server: DashboardServer
let browser: Browser
let page: Page
const cspViolations: string[] = []
const pageErrors: string[] = []

/** Builds the UI when dist/ui is missing or older than its sources (CI's `npm run build` made it). */
function ensureUiBuilt(): void {
	const index = join(root, 'dist', 'ui', 'index.html')
	const newest = (dir: string): number =>
		Math.max(
			0,
			...readdirSync(dir, { withFileTypes: true }).map((e) =>
				e.isDirectory() ? newest(join(dir, e.name)) : statSync(join(dir, e.name)).mtimeMs,
			),
		)
	if (existsSync(index) && statSync(index).mtimeMs >= newest(join(root, 'ui'))) return
	execFileSync('npm', ['run', 'build:ui'], { cwd: root, stdio: 'inherit' })
}

beforeAll(async () => {
	ensureUiBuilt()
	mkdirSync(artifacts, { recursive: true })
	seeded = await seedQueue()
	server = await serveDashboard({ queue: seeded.queue, port: 0, token: TOKEN })
	browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS })
	page = await browser.newPage({ viewport: { width: 1280, height: 900 } })
	page.on('console', (m) => {
		if (/Content Security Policy/i.test(m.text())) cspViolations.push(m.text())
	})
	page.on('pageerror', (e) => pageErrors.push(e.message))
}, 120_000)

afterAll(async () => {
	await browser?.close()
	await server?.close()
	await seeded?.cleanup()
})

it('shows the overview with counts for every state, and a first paint', async () => {
	await page.goto(`${server.url}#token=${TOKEN}`)
	// The token moved to the tab's session, out of the address.
	await expect.poll(() => page.url()).not.toContain('token=')
	for (const [state, count] of Object.entries({
		pending: '1',
		active: '1',
		waiting: '1',
		completed: '2',
		dead: '1',
		cancelled: '1',
	})) {
		await expect.poll(() => page.locator(`.card[data-state=${state}] .count`).textContent()).toBe(count)
	}
	await page.locator('svg[aria-label="throughput chart"]').waitFor()
	await page.locator('tr[data-name="send-email"]').waitFor()
	const fcp = await page.evaluate(
		() => performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? -1,
	)
	console.log(`dashboard first contentful paint: ${Math.round(fcp)} ms`)
	await page.screenshot({ path: join(artifacts, 'dashboard-overview.png'), fullPage: true })
})

it('lists jobs by state and finds one by id', async () => {
	await page.click('.card[data-state=waiting]')
	await page.locator(`tr[data-id="${seeded.ids.waiting}"]`).waitFor()
	expect(await page.locator('table.jobs tbody tr').count()).toBe(1)
	await page.fill('input[aria-label="search by job id or name"]', seeded.ids.completed)
	await page.click('form.search button')
	await page.locator(`tr[data-id="${seeded.ids.completed}"]`).waitFor()
	expect(await page.locator('table.jobs tbody tr').count()).toBe(1)
	// A known name filters by name.
	await page.fill('input[aria-label="search by job id or name"]', 'nightly-export')
	await page.click('form.search button')
	await expect.poll(() => page.locator('table.jobs tbody tr').count()).toBe(2)
})

it('shows a job with its output, steps and children', async () => {
	await page.goto(`${server.url}#/job/${seeded.ids.completed}`)
	// Wait for this job's page, not whatever the last test left on screen (a hash change re-renders).
	await page.locator('[data-testid=output]', { hasText: '"cat-300.png"' }).waitFor()
	expect(await page.locator('.timeline li').allTextContents()).toEqual([
		expect.stringContaining('measure'),
		expect.stringContaining('resize'),
	])
	await page.locator(`tr[data-id="${seeded.ids.child}"]`).waitFor()
})

it('renders a dead job whose input holds markup as text, with its error stack', async () => {
	await page.goto(`${server.url}#/job/${seeded.ids.dead}`)
	// Wait for this job's input: the page of the previous test can still be on screen for a moment.
	await page.locator('[data-testid=input]', { hasText: '__pwned' }).waitFor()
	expect(await page.locator('[data-testid=input]').textContent()).toContain(EVIL.replace(/"/g, '\\"'))
	expect(await page.evaluate(() => (globalThis as { __pwned?: number }).__pwned)).toBeUndefined()
	expect(await page.locator('script').count()).toBe(1) // the dashboard's own, nothing injected
	expect(await page.locator('details.err pre.stack').first().textContent()).toContain('FatalError')
})

it('replays a dead job by clicking, from the dead letters', async () => {
	const before = (await seeded.queue.getJob(seeded.ids.dead))!.errors.length
	await page.goto(`${server.url}#/jobs?status=dead`)
	const row = page.locator(`tr[data-id="${seeded.ids.dead}"]`)
	await row.waitFor()
	await row.locator('button', { hasText: 'Replay' }).click()
	await page.locator('.toast.ok', { hasText: `Replayed ${seeded.ids.dead}` }).waitFor()
	// It ran again (and, failing fatally again, is dead again, with one more error).
	await expect
		.poll(async () => (await seeded.queue.getJob(seeded.ids.dead))!.errors.length, { timeout: 10_000 })
		.toBe(before + 1)
	await page.goto(`${server.url}#/job/${seeded.ids.dead}`)
	await expect.poll(() => page.locator('details.err').count(), { timeout: 10_000 }).toBe(before + 1)
	await page.screenshot({ path: join(artifacts, 'dashboard-dead-job.png'), fullPage: true })
})

it('cancels a pending job by clicking, and pauses a name when the queue can', async () => {
	await page.goto(`${server.url}#/job/${seeded.ids.pending}`)
	await page.locator('button', { hasText: 'Cancel' }).click()
	await page.locator('.job-head .badge[data-state=cancelled]').waitFor()
	expect((await seeded.queue.getJob(seeded.ids.pending))!.status).toBe('cancelled')
	await page.goto(server.url)
	const row = page.locator('tr[data-name="slow-report"]')
	await row.waitFor()
	if (typeof (seeded.queue as { pause?: unknown }).pause === 'function') {
		await row.locator('button', { hasText: 'Pause' }).click()
		await row.locator('.badge.paused').waitFor()
		await row.locator('button', { hasText: 'Resume' }).click()
		await expect.poll(() => row.locator('.badge.paused').count()).toBe(0)
	}
})

it('refuses actions without the token, and says so', async () => {
	const fresh = await browser.newPage()
	try {
		await fresh.goto(`${server.url}#/jobs?status=active`)
		const row = fresh.locator(`tr[data-id="${seeded.ids.active}"]`)
		await row.waitFor()
		await row.locator('button', { hasText: 'Cancel' }).click()
		await fresh.locator('.toast.error', { hasText: 'needs the dashboard token' }).waitFor()
		expect((await seeded.queue.getJob(seeded.ids.active))!.status).toBe('active')
	} finally {
		await fresh.close()
	}
})

it('kept to its content security policy and threw nothing', () => {
	expect(cspViolations).toEqual([])
	expect(pageErrors).toEqual([])
})

it('ships under 300 KB of script', () => {
	const assets = join(root, 'dist', 'ui', 'assets')
	const bytes = readdirSync(assets)
		.filter((f) => f.endsWith('.js'))
		.reduce((sum, f) => sum + statSync(join(assets, f)).size, 0)
	console.log(`dashboard script: ${bytes} bytes`)
	expect(bytes).toBeLessThan(300 * 1024)
})
