/**
 * Compile-time checks that service results still fit the views the renderer reads (contract/reports.ts),
 * for results produced by job kinds this module does not own. A drift fails `tsc`, not the UI.
 */
import type { ExportResult } from '../export/options';
import type { ExportResultView } from '../contract/reports';

export const exportResultFitsView: ExportResult extends ExportResultView ? true : never = true;
