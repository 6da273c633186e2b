// The tables stage's public entry.
export { runTables, type TableCopySummary, type TablesOptions, type TablesSummary } from './tables.ts';
