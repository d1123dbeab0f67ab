export { MIGRATIONS, migrate } from './migrations';
export { DataDirLockedError, lockDataDir, openPglite, openPostgres, SqlError, type SqlEngine, type SqlQueryable } from './sql-engine';
export { TaskStore, type ListFilter, type StoredEvent, type SubmitResult, type TaskStoreOptions } from './task-store';
