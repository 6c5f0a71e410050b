/** One line of a line chart: numeric x (steps) and y. */
export interface Series { label: string; points: { x: number; y: number }[]; dashed?: boolean; color?: string }
