export {
  CancelledError,
  DomainError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  ResourceExhaustedError,
  UnavailableError,
  type ErrorCode,
} from './errors';
export { canTransition, IllegalTransitionError, isFinal, isLeased, stateName } from './lifecycle/state-machine';
export { durationToMillis, systemClock, timestampToMillis, toDuration, toTimestamp, type Clock } from './time';
