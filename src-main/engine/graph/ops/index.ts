/** The op registry with every op family registered (import this, not the family files). */
import './elementwise';
import './linalg';
import './shape';
import './indexing';
import './reduce';
import './nn';
import './fused';
import './fused-logprob';

export * from './registry';
export { reshapeTo } from './shape';
