export * from './dtype';
export * from './reader';
export * from './writer';
export * from './sharded';
