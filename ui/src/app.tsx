/**
 * The dashboard UI: overview (counts, live throughput), job lists by state with search, and a
 * job page (input, output, errors, steps, children) with replay, cancel, pause and resume. Every
 * value from the queue is rendered as text, never as markup.
 */
import type { ComponentChildren } from 'preact'
import { useCallback, useEffect, useRef, useState } from 'preact/hooks'
import {
	type ApiConfig,
	ApiFailure,
	type ApiJob,
	type ApiJobDetail,
	type ApiStats,
	type ApiThroughput,
	api,
	initialToken,
	saveToken,
} from './api.js'

const STATES = ['pending', 'active', 'waiting', 'completed', 'dead', 'cancelled'] as const
type State = (typeof STATES)[number]
const POLL_MS = 2000

// ---------------------------------------------------------------------------------------------
// Routing: #/ · #/jobs?status=&name=&q= · #/job/<id>

type Route =
	| { page: 'overview' }
	| { page: 'jobs'; status: string; name: string; q: string }
	| { page: 'job'; id: string }

function parseRoute(hash: string): Route {
	const h = hash.replace(/^#/, '') || '/'
	const [path, search = ''] = h.split('?') as [string, string?]
	if (path.startsWith('/job/')) return { page: 'job', id: decodeURIComponent(path.slice(5)) }
	if (path === '/jobs') {
		const p = new URLSearchParams(search)
		return { page: 'jobs', status: p.get('status') ?? '', name: p.get('name') ?? '', q: p.get('q') ?? '' }
	}
	return { page: 'overview' }
}

function jobsHref(p: { status?: string; name?: string; q?: string }): string {
	const q = new URLSearchParams()
	for (const [k, v] of Object.entries(p)) if (v) q.set(k, v)
	const s = q.toString()
	return `#/jobs${s ? `?${s}` : ''}`
}

function jobHref(id: string): string {
	return `#/job/${encodeURIComponent(id)}`
}

function useRoute(): Route {
	const [route, setRoute] = useState(() => parseRoute(location.hash))
	useEffect(() => {
		const on = () => setRoute(parseRoute(location.hash))
		addEventListener('hashchange', on)
		return () => removeEventListener('hashchange', on)
	}, [])
	return route
}

// ---------------------------------------------------------------------------------------------
// Data

/** Loads now and every `ms` while the page is visible; `reload()` loads at once. */
function usePoll<T>(load: () => Promise<T>, deps: unknown[], ms = POLL_MS) {
	const [data, setData] = useState<T | null>(null)
	const [error, setError] = useState<string | null>(null)
	const loadRef = useRef(load)
	loadRef.current = load
	const tick = useRef(0)
	const reload = useCallback(async () => {
		const mine = ++tick.current
		try {
			const d = await loadRef.current()
			if (mine === tick.current) {
				setData(d)
				setError(null)
			}
		} catch (err) {
			if (mine === tick.current) setError((err as Error).message)
		}
	}, [])
	useEffect(() => {
		setData(null)
		void reload()
		const t = setInterval(() => {
			if (document.visibilityState === 'visible') void reload()
		}, ms)
		return () => clearInterval(t)
	}, deps)
	return { data, error, reload }
}

interface Ctx {
	config: ApiConfig | null
	token: string
	/** Runs an action, shows its outcome, then refreshes. */
	act: (label: string, path: string, then?: () => void) => Promise<void>
}

// ---------------------------------------------------------------------------------------------

export function App() {
	const route = useRoute()
	const [token, setToken] = useState(initialToken)
	const [config, setConfig] = useState<ApiConfig | null>(null)
	const [toast, setToast] = useState<{ kind: 'ok' | 'error'; text: string } | null>(null)
	useEffect(() => {
		api.config().then(setConfig, (err: Error) => setToast({ kind: 'error', text: err.message }))
	}, [])
	useEffect(() => {
		if (!toast) return
		const t = setTimeout(() => setToast(null), 4000)
		return () => clearTimeout(t)
	}, [toast])

	const act = useCallback(
		async (label: string, path: string, then?: () => void) => {
			try {
				await api.act(path, token)
				setToast({ kind: 'ok', text: label })
				then?.()
			} catch (err) {
				const text =
					err instanceof ApiFailure && err.status === 401
						? 'This action needs the dashboard token: enter it at the top right.'
						: (err as Error).message
				setToast({ kind: 'error', text })
			}
		},
		[token],
	)
	const ctx: Ctx = { config, token, act }

	return (
		<div class="shell">
			<header class="top">
				<a class="brand" href="#/">
					spool
				</a>
				<nav>
					<a class={route.page === 'overview' ? 'on' : ''} href="#/">
						Overview
					</a>
					<a class={route.page === 'jobs' && route.status !== 'dead' ? 'on' : ''} href="#/jobs">
						Jobs
					</a>
					<a
						class={route.page === 'jobs' && route.status === 'dead' ? 'on' : ''}
						href={jobsHref({ status: 'dead' })}
					>
						Dead letters
					</a>
				</nav>
				<span class="grow" />
				{config && <span class="muted storage">{config.storage}</span>}
				{config?.tokenRequired && (
					<TokenBox
						token={token}
						onChange={(t) => {
							saveToken(t)
							setToken(t)
						}}
					/>
				)}
			</header>
			{config?.warning && (
				<div class="banner warn" role="alert">
					{config.warning}
				</div>
			)}
			{toast && (
				<div class={`toast ${toast.kind}`} role="status">
					{toast.text}
				</div>
			)}
			<main>
				{route.page === 'overview' && <Overview ctx={ctx} />}
				{route.page === 'jobs' && <Jobs ctx={ctx} route={route} />}
				{route.page === 'job' && <JobPage ctx={ctx} id={route.id} />}
			</main>
		</div>
	)
}

function TokenBox({ token, onChange }: { token: string; onChange: (t: string) => void }) {
	const [value, setValue] = useState(token)
	return (
		<form
			class="token"
			onSubmit={(e) => {
				e.preventDefault()
				onChange(value.trim())
			}}
		>
			<input
				type="password"
				placeholder="token"
				aria-label="dashboard token"
				value={value}
				onInput={(e) => setValue((e.target as HTMLInputElement).value)}
			/>
			<button type="submit">{token ? 'Change' : 'Set token'}</button>
		</form>
	)
}

// ---------------------------------------------------------------------------------------------
// Overview

function Overview({ ctx }: { ctx: Ctx }) {
	const stats = usePoll(() => api.stats(), [])
	const tp = usePoll(() => api.throughput(), [])
	const s = stats.data
	return (
		<>
			<section class="cards">
				{STATES.map((state) => (
					<a key={state} class={`card ${state}`} href={jobsHref({ status: state })} data-state={state}>
						<span class="label">{state}</span>
						<span class="count">{s ? s.total[state].toLocaleString() : '…'}</span>
					</a>
				))}
			</section>
			{stats.error && <p class="error">Could not load the counts: {stats.error}</p>}
			<section class="panel">
				<h2>Throughput</h2>
				{tp.data ? <Chart data={tp.data} /> : <div class="chart-empty">…</div>}
			</section>
			<section class="panel">
				<h2>Jobs by name</h2>
				{s && <NamesTable stats={s} ctx={ctx} reload={stats.reload} />}
			</section>
		</>
	)
}

function NamesTable({ stats, ctx, reload }: { stats: ApiStats; ctx: Ctx; reload: () => void }) {
	const names = Object.keys(stats.byName).sort()
	if (names.length === 0) return <p class="muted">No jobs yet.</p>
	return (
		<table class="grid">
			<thead>
				<tr>
					<th>Name</th>
					{STATES.map((s) => (
						<th key={s} class="num">
							{s}
						</th>
					))}
					<th />
				</tr>
			</thead>
			<tbody>
				{names.map((name) => {
					const c = stats.byName[name]!
					const paused = stats.paused.includes(name)
					return (
						<tr key={name} data-name={name}>
							<td>
								<a href={jobsHref({ name })}>{name}</a>
								{paused && <span class="badge paused">paused</span>}
							</td>
							{STATES.map((s) => (
								<td key={s} class="num">
									{c[s] > 0 ? (
										<a href={jobsHref({ name, status: s })}>{c[s]}</a>
									) : (
										<span class="muted">0</span>
									)}
								</td>
							))}
							<td class="actions">
								{c.dead > 0 && (
									<button
										type="button"
										onClick={() =>
											ctx.act(
												`Replayed the dead jobs of ${name}`,
												`dead/${encodeURIComponent(name)}/replay-all`,
												reload,
											)
										}
									>
										Replay dead
									</button>
								)}
								{ctx.config?.canPause &&
									(paused ? (
										<button
											type="button"
											onClick={() =>
												ctx.act(`Resumed ${name}`, `names/${encodeURIComponent(name)}/resume`, reload)
											}
										>
											Resume
										</button>
									) : (
										<button
											type="button"
											onClick={() =>
												ctx.act(`Paused ${name}`, `names/${encodeURIComponent(name)}/pause`, reload)
											}
										>
											Pause
										</button>
									))}
							</td>
						</tr>
					)
				})}
			</tbody>
		</table>
	)
}

/** Jobs finished per second over the last ten minutes, completed over failed, as an SVG area chart. */
function Chart({ data }: { data: ApiThroughput }) {
	const W = 800
	const H = 160
	// From the first bucket with jobs (at least the last two minutes) to now.
	const first = data.points.findIndex((p) => p.completed + p.failed > 0)
	const from = first === -1 ? data.points.length - 24 : Math.min(first, data.points.length - 24)
	const pts = data.points.slice(Math.max(0, from))
	const minutes = Math.round((pts.length * data.bucketMs) / 60_000)
	const perSec = (n: number) => n / (data.bucketMs / 1000)
	const max = Math.max(1, ...pts.map((p) => perSec(p.completed + p.failed)))
	const x = (i: number) => (i / Math.max(1, pts.length - 1)) * W
	const y = (v: number) => H - (v / max) * (H - 10)
	const line = (f: (p: ApiThroughput['points'][number]) => number) =>
		pts.map((p, i) => `${i === 0 ? 'M' : 'L'}${x(i).toFixed(1)},${y(perSec(f(p))).toFixed(1)}`).join(' ')
	const area = (f: (p: ApiThroughput['points'][number]) => number) => `${line(f)} L${W},${H} L0,${H} Z`
	const last = pts.slice(-6)
	const recent = last.reduce((s, p) => s + p.completed, 0) / ((last.length * data.bucketMs) / 1000 || 1)
	const failedRecent = last.reduce((s, p) => s + p.failed, 0)
	return (
		<figure class="chart">
			<figcaption>
				<span class="dot completed" /> completed <span class="dot failed" /> failed attempts
				<span class="grow" />
				<strong data-testid="rate">{recent.toFixed(1)}</strong>&nbsp;jobs/s over the last 30 s
				{failedRecent > 0 && <span class="muted">· {failedRecent} failed attempts</span>}
			</figcaption>
			<svg viewBox={`0 0 ${W} ${H}`} preserveAspectRatio="none" role="img" aria-label="throughput chart">
				<line x1="0" x2={W} y1={y(max)} y2={y(max)} class="gridline" />
				<line x1="0" x2={W} y1={y(max / 2)} y2={y(max / 2)} class="gridline" />
				<path d={area((p) => p.completed + p.failed)} class="area failed" />
				<path d={area((p) => p.completed)} class="area completed" />
			</svg>
			<div class="axis">
				<span>{minutes} min ago</span>
				<span>max {max.toFixed(1)}/s</span>
				<span>now</span>
			</div>
		</figure>
	)
}

// ---------------------------------------------------------------------------------------------
// Job lists

function Jobs({ ctx, route }: { ctx: Ctx; route: Extract<Route, { page: 'jobs' }> }) {
	const stats = usePoll(() => api.stats(), [])
	const [search, setSearch] = useState(route.q || route.name)
	const [pages, setPages] = useState<ApiJob[]>([])
	const [cursor, setCursor] = useState<string | null>(null)
	useEffect(() => setSearch(route.q || route.name), [route.q, route.name])
	const names = stats.data ? Object.keys(stats.data.byName) : []
	const list = usePoll(
		() =>
			route.q
				? api.jobs({ id: route.q })
				: api.jobs({ status: route.status || undefined, name: route.name || undefined }),
		[route.status, route.name, route.q],
	)
	useEffect(() => {
		setPages([])
		setCursor(null)
	}, [route.status, route.name, route.q])
	useEffect(() => {
		if (pages.length === 0) setCursor(list.data?.nextCursor ?? null)
	}, [list.data, pages.length])
	const jobs = [
		...(list.data?.jobs ?? []),
		...pages.filter((p) => !list.data?.jobs.some((j) => j.id === p.id)),
	]
	const counts = route.name ? stats.data?.byName[route.name] : stats.data?.total

	const onSearch = (e: Event) => {
		e.preventDefault()
		const q = search.trim()
		// A known job name filters by name; anything else is looked up as an id.
		location.hash = jobsHref(
			!q ? { status: route.status } : names.includes(q) ? { status: route.status, name: q } : { q },
		)
	}
	return (
		<>
			<div class="toolbar">
				<nav class="tabs">
					<a class={!route.status && !route.q ? 'on' : ''} href={jobsHref({ name: route.name })}>
						all
					</a>
					{STATES.map((s) => (
						<a
							key={s}
							class={route.status === s ? 'on' : ''}
							href={jobsHref({ status: s, name: route.name })}
							data-tab={s}
						>
							{s} {counts && <span class="badge">{counts[s]}</span>}
						</a>
					))}
				</nav>
				<form class="search" onSubmit={onSearch}>
					<input
						list="job-names"
						placeholder="Search by job id or name"
						aria-label="search by job id or name"
						value={search}
						onInput={(e) => setSearch((e.target as HTMLInputElement).value)}
					/>
					<datalist id="job-names">
						{names.map((n) => (
							<option key={n} value={n} />
						))}
					</datalist>
					<button type="submit">Search</button>
				</form>
			</div>
			{(route.name || route.q) && (
				<p class="muted">
					{route.q ? `Job id “${route.q}”` : `Name “${route.name}”`} ·{' '}
					<a href={jobsHref({ status: route.status })}>clear</a>
				</p>
			)}
			{route.status === 'dead' && jobs.length > 0 && (
				<div class="toolbar">
					<button
						type="button"
						class="primary"
						onClick={() =>
							ctx.act(
								'Replayed every dead job',
								route.name ? `dead/${encodeURIComponent(route.name)}/replay-all` : 'dead/replay-all',
								list.reload,
							)
						}
					>
						Replay all{route.name ? ` ${route.name}` : ''}
					</button>
				</div>
			)}
			{list.error && <p class="error">{list.error}</p>}
			{list.data && jobs.length === 0 && <p class="muted empty">No jobs here.</p>}
			{jobs.length > 0 && <JobsTable jobs={jobs} ctx={ctx} reload={list.reload} />}
			{cursor && (
				<button
					type="button"
					class="more"
					onClick={async () => {
						const next = await api.jobs({
							status: route.status || undefined,
							name: route.name || undefined,
							cursor,
						})
						setPages((p) => [...p, ...next.jobs])
						setCursor(next.nextCursor)
					}}
				>
					Load more
				</button>
			)}
		</>
	)
}

function JobsTable({ jobs, ctx, reload }: { jobs: readonly ApiJob[]; ctx: Ctx; reload: () => void }) {
	return (
		<table class="grid jobs">
			<thead>
				<tr>
					<th>Id</th>
					<th>Name</th>
					<th>State</th>
					<th class="num">Attempt</th>
					<th>Created</th>
					<th>Last error</th>
					<th />
				</tr>
			</thead>
			<tbody>
				{jobs.map((j) => {
					const last = j.errors[j.errors.length - 1]
					return (
						<tr key={j.id} data-id={j.id}>
							<td class="mono">
								<a href={jobHref(j.id)}>{j.id}</a>
							</td>
							<td>{j.name}</td>
							<td>
								<StateBadge state={j.status} />
							</td>
							<td class="num">
								{j.attempt}/{j.maxAttempts}
							</td>
							<td title={j.createdAt}>{ago(j.createdAt)}</td>
							<td class="clip">{last ? `${last.name}: ${last.message}` : ''}</td>
							<td class="actions">
								<JobActions job={j} ctx={ctx} reload={reload} />
							</td>
						</tr>
					)
				})}
			</tbody>
		</table>
	)
}

function JobActions({ job, ctx, reload }: { job: ApiJob; ctx: Ctx; reload: () => void }) {
	const id = encodeURIComponent(job.id)
	return (
		<>
			{job.status === 'dead' && (
				<button type="button" onClick={() => ctx.act(`Replayed ${job.id}`, `dead/${id}/replay`, reload)}>
					Replay
				</button>
			)}
			{(job.status === 'pending' || job.status === 'active' || job.status === 'waiting') && (
				<button
					type="button"
					class="danger"
					onClick={() => ctx.act(`Cancelled ${job.id}`, `jobs/${id}/cancel`, reload)}
				>
					Cancel
				</button>
			)}
		</>
	)
}

// ---------------------------------------------------------------------------------------------
// One job

function JobPage({ ctx, id }: { ctx: Ctx; id: string }) {
	const { data, error, reload } = usePoll<ApiJobDetail | null>(
		() =>
			api.job(id).catch((err) => {
				if (err instanceof ApiFailure && err.status === 404) return null
				throw err
			}),
		[id],
	)
	if (error) return <p class="error">{error}</p>
	if (data === null) return <p class="muted">Loading…</p>
	if (!data) return <p class="error">No job with id “{id}”.</p>
	const { job, steps, children } = data
	return (
		<article class="job">
			<div class="job-head">
				<h1>
					<span class="muted">{job.name}</span> <span class="mono">{job.id}</span>
				</h1>
				<StateBadge state={job.status} />
				<span class="grow" />
				<JobActions job={job} ctx={ctx} reload={reload} />
			</div>
			<dl class="facts">
				<Fact label="Attempt">
					{job.attempt} of {job.maxAttempts}
				</Fact>
				<Fact label="Priority">{job.priority}</Fact>
				<Fact label="Created">{time(job.createdAt)}</Fact>
				<Fact label="Run at">{time(job.runAt)}</Fact>
				{job.startedAt && <Fact label="Started">{time(job.startedAt)}</Fact>}
				{job.finishedAt && <Fact label="Finished">{time(job.finishedAt)}</Fact>}
				{job.parentId && (
					<Fact label="Parent">
						<a class="mono" href={jobHref(job.parentId)}>
							{job.parentId}
						</a>
					</Fact>
				)}
				{job.leaseOwner && <Fact label="Worker">{job.leaseOwner}</Fact>}
				{job.dedupeKey && <Fact label="Dedupe key">{job.dedupeKey}</Fact>}
				{job.idempotencyKey && <Fact label="Idempotency key">{job.idempotencyKey}</Fact>}
			</dl>
			<div class="two">
				<section class="panel">
					<h2>Input</h2>
					<pre class="json" data-testid="input">
						{pretty(job.input)}
					</pre>
				</section>
				<section class="panel">
					<h2>Output</h2>
					{job.status === 'completed' ? (
						<pre class="json" data-testid="output">
							{pretty(job.output)}
						</pre>
					) : (
						<p class="muted">None yet.</p>
					)}
				</section>
			</div>
			{job.errors.length > 0 && (
				<section class="panel">
					<h2>Errors</h2>
					{[...job.errors].reverse().map((e) => (
						<details key={`${e.attempt}-${e.at}`} class="err" open={e === job.errors[job.errors.length - 1]}>
							<summary>
								<span class="badge dead">attempt {e.attempt}</span> <strong>{e.name}</strong>: {e.message}
								<span class="muted"> · {time(new Date(e.at).toISOString())}</span>
							</summary>
							{e.stack && <pre class="stack">{e.stack}</pre>}
						</details>
					))}
				</section>
			)}
			<section class="panel">
				<h2>Steps</h2>
				{steps.length === 0 ? (
					<p class="muted">No durable steps.</p>
				) : (
					<ol class="timeline">
						{steps.map((s) => (
							<li key={s.stepId} class={s.state}>
								<span class="when" title={s.createdAt}>
									{time(s.createdAt)}
								</span>
								<strong>{s.name}</strong> <StateBadge state={s.state} />
								<span class="muted"> {ms(Date.parse(s.updatedAt) - Date.parse(s.createdAt))}</span>
								{s.output !== null && <pre class="json small">{pretty(s.output)}</pre>}
								{s.error && <pre class="stack small">{`${s.error.name}: ${s.error.message}`}</pre>}
							</li>
						))}
					</ol>
				)}
			</section>
			<section class="panel">
				<h2>Children</h2>
				{children.length === 0 ? (
					<p class="muted">No child jobs.</p>
				) : (
					<JobsTable jobs={children} ctx={ctx} reload={reload} />
				)}
			</section>
			{job.logs.length > 0 && (
				<section class="panel">
					<h2>Log</h2>
					<pre class="stack">{job.logs.join('\n')}</pre>
				</section>
			)}
		</article>
	)
}

function Fact({ label, children }: { label: string; children: ComponentChildren }) {
	return (
		<div>
			<dt>{label}</dt>
			<dd>{children}</dd>
		</div>
	)
}

function StateBadge({ state }: { state: string }) {
	return (
		<span class={`badge ${state}`} data-state={state}>
			{state}
		</span>
	)
}

// ---------------------------------------------------------------------------------------------

function pretty(value: unknown): string {
	return value === undefined ? '' : JSON.stringify(value, null, 2)
}

function time(iso: string): string {
	const d = new Date(iso)
	return `${d.toLocaleString()} (${ago(iso)})`
}

function ago(iso: string): string {
	const s = Math.round((Date.now() - Date.parse(iso)) / 1000)
	const abs = Math.abs(s)
	const unit =
		abs < 60
			? `${abs}s`
			: abs < 3600
				? `${Math.round(abs / 60)}m`
				: abs < 86400
					? `${Math.round(abs / 3600)}h`
					: `${Math.round(abs / 86400)}d`
	return s >= 0 ? `${unit} ago` : `in ${unit}`
}

function ms(n: number): string {
	return n < 1000 ? `${n} ms` : `${(n / 1000).toFixed(1)} s`
}

export type { State }
