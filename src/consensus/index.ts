// The consensus stage's public entry: consensus and calibrate runs, and the typed options they take.
export { runCalibrate, runConsensus, type CalibrationSummary, type ConsensusRunOptions, type ConsensusSummary } from './run.ts';
export { ConsensusOptionError, type ConsensusOptionName, type TieChoice } from './consensus.ts';
