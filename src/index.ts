/** The dialer as a library: producers enqueue calls, consumers dial them, the results worker keeps the records. */
export { enqueueCall, enqueueCalls, CallProducer, type CallRequest, type EnqueueSummary, type LibraryEnqueueOptions } from './producer/enqueueCalls.js';
export { importCsv } from './producer/importCsv.js';
export { cancelCalls, type CancelSummary } from './producer/cancelCalls.js';
export { pauseCampaign, resumeCampaign } from './producer/pauseCampaign.js';
export { callWindowSchema, nextWindowOpening, type CallWindow } from './core/callWindow.js';
export { startDialWorker, type DialWorkerHandle, type DialWorkerOptions } from './consumer/dialWorker.js';
export { startResultsWorker, type ResultsWorkerHandle, type ResultsWorkerOptions } from './results/resultsWorker.js';
export { buildCampaignReport, type CampaignReport, type ReportCall } from './results/campaignReport.js';
export { classifySipError, type DialFailure } from './core/classifySipError.js';
export { loadConfig, type DialerConfig } from './core/config.js';
export { OUTCOMES, type Outcome, type CallResult } from './core/outcomes.js';
export { CALLS_QUEUE, CALL_RESULTS_QUEUE, type CallJob, type DispatchMetadata } from './core/queues.js';
export { ResultReporter } from './core/reportResult.js';
export { startLiveKitSim, type LiveKitSim } from './sim/index.js';
