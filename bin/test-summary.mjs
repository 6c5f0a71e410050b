#!/usr/bin/env node
// Prints vitest's JSON report as one plain closing line: "N passed, N failed" (and skipped, if any).
import { readFileSync } from 'node:fs';
const file = process.argv[2] ?? 'test-results/vitest.json';
const r = JSON.parse(readFileSync(file, 'utf8'));
const skipped = (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0);
console.log(`${r.numPassedTests} passed, ${r.numFailedTests} failed${skipped ? `, ${skipped} skipped` : ''}`);
process.exit(r.numFailedTests > 0 || !r.success ? 1 : 0);
