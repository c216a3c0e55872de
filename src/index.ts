/**
 * spool: a durable job queue and workflow engine for TypeScript on Node.js.
 * This module re-exports the public API; each export is documented where it is defined.
 */

export type { JobContext } from './context.js'
export { run, runOnce, sleep, thread } from './durable/run.js'
export type { StepOptions, ThreadContext, ThreadLimits, ThreadOptions } from './durable/steps.js'
export type { WaitForOptions, WaitPattern } from './durable/wait.js'
export {
	CancelledError,
	ConfigError,
	FatalError,
	JobFailedError,
	JobNotFoundError,
	LeaseLostError,
	NonDeterminismError,
	NonErrorThrownError,
	QueueClosedError,
	SerializationError,
	SpoolError,
	type SpoolErrorCode,
	StepInterruptedError,
	StorageCorruptError,
	StorageForeignError,
	StorageUnavailableError,
	ThreadClosureError,
	ThrottledError,
	TimeoutError,
	UnknownJobError,
	ValidationError,
	type ValidationIssue,
} from './errors.js'
export type { Emitter, Listener } from './events.js'
export type { BackoffConfig, BackoffFunction, BackoffOption } from './flow/backoff.js'
export {
	type CronConfig,
	type CronOption,
	type CronScheduler,
	cronerScheduler,
} from './flow/cron.js'
export type {
	ConcurrencyConfig,
	ConcurrencyOption,
	ConcurrencySpec,
	DebounceConfig,
	DebounceOption,
	DebounceSpec,
	ThrottleConfig,
	ThrottleOption,
	ThrottleSpec,
} from './flow/limits.js'
export { createPipe, type PipeDefinition, type PipeOptions } from './flow/pipe.js'
export type { Trigger } from './flow/trigger.js'
export {
	createJob,
	type JobDefinition,
	type JobHandler,
	type JobHooks,
	type JobOptions,
	type Retention,
	type SettledResult,
} from './job.js'
export type { JsonValue } from './json.js'
export { consoleLogger, type Logger, type LogLevel, silentLogger } from './logger.js'
export {
	type BoundJob,
	type BoundPipe,
	type CancelOutcome,
	type ClaimHandle,
	createQueue,
	type DeadLetters,
	type EnqueueMap,
	type EnqueueOptions,
	type EntryInput,
	type EntryName,
	type EntryOutput,
	type InputArgs,
	type JobEventMeta,
	type JobEvents,
	type JobHandle,
	type JobInfo,
	type JobList,
	type OutputMap,
	type PipeInput,
	type Queue,
	type QueueEvents,
	type QueueOptions,
	type TransactionClient,
	type WorkerOptions,
} from './queue.js'
export type { StandardSchemaV1 } from './schema.js'
export * from './storage/contract.js'
export { type MemoryStorageOptions, memory } from './storage/memory.js'
export {
	type Clock,
	type Duration,
	type Frequency,
	parseDuration,
	parseFrequency,
	systemClock,
} from './time.js'
