/**
 * The renderer's Content-Security-Policy: only our own bundled code, no inline scripts, no remote content.
 * `connect-src` allows the local bridge's WebSocket (browser mode); in Electron there is nothing to connect to.
 * Inline styles are allowed because Svelte and chart.js set style attributes.
 */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data: blob:",
  "font-src 'self'",
  "connect-src 'self' ws://127.0.0.1:*",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');
