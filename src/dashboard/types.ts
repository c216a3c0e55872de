/**
 * The shapes of the dashboard's JSON API (`/api/v1`). Dates travel as ISO strings, inputs and
 * outputs as the JSON they were stored as. The UI imports these types; so can any client.
 */
import type { AttemptError, JobStatus, StatusCounts, StepState } from '../storage/contract.js'

/** A job as the API sends it. */
export interface ApiJob {
	readonly id: string
	readonly name: string
	readonly status: JobStatus
	readonly input: unknown
	readonly output: unknown
	readonly priority: number
	readonly runAt: string
	readonly attempt: number
	readonly maxAttempts: number
	readonly errors: readonly AttemptError[]
	readonly logs: readonly string[]
	readonly dedupeKey: string | null
	readonly idempotencyKey: string | null
	readonly parentId: string | null
	readonly leaseOwner: string | null
	readonly createdAt: string
	readonly updatedAt: string
	readonly startedAt: string | null
	readonly finishedAt: string | null
}

/** A durable step of a job. */
export interface ApiStep {
	readonly stepId: string
	readonly name: string
	readonly state: StepState
	readonly output: unknown
	readonly error: AttemptError | null
	readonly createdAt: string
	readonly updatedAt: string
}

/** `GET /api/v1/stats`. */
export interface ApiStats {
	readonly total: StatusCounts
	readonly byName: Readonly<Record<string, StatusCounts>>
	/** Job names that are paused (empty when the queue cannot pause). */
	readonly paused: readonly string[]
}

/** `GET /api/v1/jobs` and `GET /api/v1/dead`: a page of jobs, newest first. */
export interface ApiJobList {
	readonly jobs: readonly ApiJob[]
	/** Pass back as `cursor` for the next page; null on the last page. */
	readonly nextCursor: string | null
}

/** `GET /api/v1/jobs/:id`: one job with its steps and children. */
export interface ApiJobDetail {
	readonly job: ApiJob
	readonly steps: readonly ApiStep[]
	/** The first 100 child jobs, newest first. */
	readonly children: readonly ApiJob[]
}

/** `GET /api/v1/throughput`: jobs finished per bucket, oldest first. */
export interface ApiThroughput {
	/** The width of a bucket, in ms. */
	readonly bucketMs: number
	readonly points: readonly {
		/** The bucket's start, epoch ms. */
		readonly t: number
		readonly completed: number
		readonly failed: number
	}[]
}

/** `GET /api/v1/config`: what the UI needs to know about the server. */
export interface ApiConfig {
	/** Whether actions need a token. */
	readonly tokenRequired: boolean
	/** Set when no token is configured: anyone who reaches the address can change jobs. */
	readonly warning: string | null
	/** Whether the queue supports pause and resume. */
	readonly canPause: boolean
	/** The storage, e.g. `sqlite:.spool/spool.db`. */
	readonly storage: string
	readonly version: 1
}

/** Every error response: `{ error: { code, message } }`. */
export interface ApiError {
	readonly error: { readonly code: string; readonly message: string }
}
