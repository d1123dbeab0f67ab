export { MIGRATIONS, migrate } from './migrations';
export { FaultyEngine, InjectedFault, parseFaultSpec, type FaultSpec } from './faulty-engine';
export { DataDirLockedError, isTransient, lockDataDir, openPglite, openPostgres, SqlError, type SqlEngine, type SqlQueryable } from './sql-engine';
export { TaskStore, type DeadLetterFilter, type ListFilter, type StoredEvent, type SubmitResult, type TaskStoreOptions } from './task-store';
export { ScheduleStore, type FireRecord, type FireRetry, type NewSchedule, type ScheduleListFilter } from './schedule-store';
export { TokenStore } from './token-store';
