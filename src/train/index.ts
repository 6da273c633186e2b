// The train stage's public entry: a resumable Diffusion-DPO run, its config file and the backends it runs on.
export { runTrain, TrainError, type TrainOptions, type TrainProgress, type TrainSummary } from './run.ts';
export { ConfigError, readTrainConfig, type TrainConfig } from './config.ts';
export type { BackendChoice } from './backend.ts';
