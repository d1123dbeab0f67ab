export { cronMatchesWallTime, latestFireAtOrBefore, nextFireAfter, parseCron, parseTimeZone, zoneOffsetAt, type CronExpression } from './cron';
export { dueFire, fireRequestId, type DueFire } from './catch-up';
export { DEFAULT_FIRE_RETRY_POLICY, fireRetryAt, type FireRetryTiming } from './fire-retry';
export { DEFAULT_TIME_ZONE, MAX_SCHEDULE_DURATION_MS, parseScheduleRequest } from './parse-schedule';
