// The export stage's public entry.
export { EXPORT_FORMATS, ExportError, runExport, type ExportFormat, type ExportOptions, type ExportSummary } from './export.ts';
