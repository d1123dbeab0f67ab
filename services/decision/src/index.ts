export { DecisionConfigSchema, loadDecisionConfig, type DecisionConfig } from './config';
export { EventBus, type EventFilter, type EventListener } from './event-bus';
export { Scheduler, type AgentLink, type SchedulerOptions } from './scheduler';
export { startDecision, type RunningDecision, type StartDecisionOptions } from './start';
export { RecurringTasks, SCHEDULE_LABEL, type RecurringTasksOptions } from './recurring';
