// The report stage's public entry: the audit and eval runs and the report model they return.
export { AuditInputError, runAudit, type RunAuditOptions } from './audit.ts';
export { EvalCoverageError, EvalInputError, runEval, type RunEvalOptions } from './eval.ts';
export { calibrationFitText, type AuditReport, type AuditResult, type EvalReport, type EvalResult } from './model.ts';
export { intervalWarnings } from './winrate.ts';
