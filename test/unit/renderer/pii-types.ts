/** Every personal-data kind the scrubber reports (data/clean/pii.ts PiiCounts), so a new kind must get words. */
import type { PiiCounts } from '../../../src-main/data/clean/pii';
const all: Record<keyof PiiCounts, true> = { email: true, phone: true, ip: true, creditCard: true, iban: true, nationalId: true, secret: true };
export const PII_TYPES_FOR_TEST = Object.keys(all);
