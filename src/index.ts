/**
 * The dialer as a library: producers enqueue calls, consumers dial them, the agent talks, the results worker keeps
 * the records. A short, explicit list (as graphile-worker's index.ts): what a service embedding the dialer calls,
 * and the types those calls take and return. The LiveKit simulator and the simulated agent are development tools
 * under their own entry points, `ai-dialer/sim` (src/sim) and `ai-dialer/harness` (src/harness); the voice agent's job,
for an agents-js worker of your own, is `ai-dialer/agent` (src/agent; `dialer agent start` runs it for you).
 */

// Producing calls
export { enqueueCall, enqueueCalls, CallProducer, type CallRequest, type EnqueueSummary, type LibraryEnqueueOptions } from './producer/enqueueCalls.js';
export { importCsv } from './producer/importCsv.js';
export { cancelCalls, type CancelSummary } from './producer/cancelCalls.js';
export { pauseCampaign, resumeCampaign } from './producer/pauseCampaign.js';
export { CampaignStore, CampaignNotFoundError, CampaignExistsError, CampaignStateError, InvalidCampaignError, type CampaignView } from './campaigns/campaignStore.js';
export { campaignSettingsSchema, campaignCreateSchema, campaignUpdateSchema, type Campaign, type CampaignSettings, type CampaignStatus } from './campaigns/campaignSchema.js';
export { CallSchedules, startScheduleWorker, scheduleSchema, type Schedule, type ScheduleView } from './schedules/callSchedules.js';
export { ActiveCallLeases } from './core/activeCallLeases.js';
export { callWindowSchema, nextWindowOpening, type CallWindow } from './core/callWindow.js';

// Dialing them
export { startDialWorker, type DialWorkerHandle, type DialWorkerOptions } from './consumer/dialWorker.js';
export { classifySipError, type DialFailure } from './core/classifySipError.js';

// Outcomes and reports
export { startResultsWorker, type ResultsWorkerHandle, type ResultsWorkerOptions } from './results/resultsWorker.js';
export { buildCampaignReport, type CampaignReport, type ReportCall } from './results/campaignReport.js';
export { ResultReporter } from './core/reportResult.js';
export { OUTCOMES, type Outcome, type CallResult } from './core/outcomes.js';

// Settings and the queues' contract
export { loadConfig, type DialerConfig } from './core/config.js';
export { CALLS_QUEUE, CALL_RESULTS_QUEUE, type CallJob, type DispatchMetadata } from './core/queues.js';
