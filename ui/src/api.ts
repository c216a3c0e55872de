/** The dashboard's JSON API, from the browser. Addresses are relative to the page. */
import type {
	ApiConfig,
	ApiJobDetail,
	ApiJobList,
	ApiStats,
	ApiThroughput,
} from '../../src/dashboard/types.js'

export type {
	ApiConfig,
	ApiJob,
	ApiJobDetail,
	ApiJobList,
	ApiStats,
	ApiStep,
	ApiThroughput,
} from '../../src/dashboard/types.js'

const TOKEN_KEY = 'spool.token'

/** The token from `#token=...` (then dropped from the address) or this tab's session. */
export function initialToken(): string {
	const m = /(?:^#|&)token=([^&]*)/.exec(location.hash)
	if (m) {
		const token = decodeURIComponent(m[1]!)
		sessionStorage.setItem(TOKEN_KEY, token)
		const rest = location.hash.replace(/(^#|&)token=[^&]*/, '$1').replace(/^#&/, '#')
		history.replaceState(null, '', rest === '#' ? location.pathname + location.search : rest)
		return token
	}
	return sessionStorage.getItem(TOKEN_KEY) ?? ''
}

export function saveToken(token: string): void {
	if (token) sessionStorage.setItem(TOKEN_KEY, token)
	else sessionStorage.removeItem(TOKEN_KEY)
}

/** An API error with its code. */
export class ApiFailure extends Error {
	constructor(
		readonly status: number,
		readonly code: string,
		message: string,
	) {
		super(message)
	}
}

async function call<T>(path: string, init?: RequestInit): Promise<T> {
	const res = await fetch(`api/v1/${path}`, init)
	const body = (await res.json().catch(() => null)) as { error?: { code: string; message: string } } | null
	if (!res.ok) {
		throw new ApiFailure(res.status, body?.error?.code ?? 'HTTP', body?.error?.message ?? res.statusText)
	}
	return body as T
}

function query(params: Record<string, string | undefined | null>): string {
	const q = new URLSearchParams()
	for (const [k, v] of Object.entries(params)) if (v) q.set(k, v)
	const s = q.toString()
	return s ? `?${s}` : ''
}

export const api = {
	config: () => call<ApiConfig>('config'),
	stats: () => call<ApiStats>('stats'),
	throughput: () => call<ApiThroughput>('throughput'),
	jobs: (p: { status?: string; name?: string; id?: string; cursor?: string | null; limit?: number }) =>
		call<ApiJobList>(`jobs${query({ ...p, limit: String(p.limit ?? 50) })}`),
	job: (id: string) => call<ApiJobDetail>(`jobs/${encodeURIComponent(id)}`),
	/** An action: POST with the token. */
	act: <T = unknown>(path: string, token: string) =>
		call<T>(path, {
			method: 'POST',
			headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
			body: '{}',
		}),
}
