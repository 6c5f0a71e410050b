#!/usr/bin/env node
// `npm run dev:web`: build the renderer, then serve it with the real services through the bridge.
import { execSync } from 'node:child_process';
execSync('npx electron-vite build', { stdio: 'inherit' });
execSync('node bin/lathe.mjs serve --port 5174', { stdio: 'inherit' });
