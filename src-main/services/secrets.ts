/**
 * Secrets (the Hugging Face Hub token). Encrypted with the OS keychain through Electron's safeStorage and
 * stored only as ciphertext; where no keychain is available (bridge, CLI, a Linux session without a
 * keyring) saving is refused with a plain explanation instead of falling back to plain text.
 */
import { UserError } from '../util/progress';
import type { SettingsService } from './settings';

/** The subset of Electron's safeStorage we use. */
export interface SecretBox {
  isEncryptionAvailable(): boolean;
  encryptString(plain: string): Buffer;
  decryptString(cipher: Buffer): string;
  /** Linux: safeStorage.getSelectedStorageBackend() ('gnome_libsecret', 'kwallet5', 'basic_text', ...). */
  backend?(): string;
}

/**
 * Why a keychain backend cannot hold secrets, or null. On Linux, `basic_text` (no keyring running) encrypts
 * with a fixed key built into Chromium, and `unknown` is not known to be better: both are plain text in effect.
 */
export function weakBackendReason(platform: string, backend: string | undefined): string | null {
  if (platform !== 'linux' || backend === undefined) return null;
  if (backend === 'basic_text' || backend === 'unknown') {
    return `no keyring is running, so Electron would encrypt it with a fixed key anyone can look up (its "${backend}" storage)`;
  }
  return null;
}

export class SecretsService {
  constructor(private readonly settings: SettingsService, private readonly box: SecretBox | null, private readonly platform: string = process.platform) {}

  available(): boolean {
    return this.box !== null && this.box.isEncryptionAvailable() && this.weakness() === null;
  }

  private weakness(): string | null {
    return this.box ? weakBackendReason(this.platform, this.box.backend?.()) : null;
  }

  setHubToken(token: string): void {
    const weak = this.weakness();
    if (weak) {
      throw new UserError(
        'secrets.weakKeychain',
        `Lathe did not save the Hub token: ${weak}.`,
        'Install and unlock a keyring (GNOME Keyring or KWallet, for example the gnome-keyring package), restart Lathe, and save the token again.',
      );
    }
    if (!this.box || !this.box.isEncryptionAvailable()) {
      throw new UserError(
        'secrets.unavailable',
        'Lathe can only store a Hub token in your system keychain, and no keychain is available here.',
        'Open Lathe as the desktop app (and on Linux, unlock your keyring), then save the token again.',
      );
    }
    const cipher = this.box.encryptString(token).toString('base64');
    this.settings.update({ hubTokenEncrypted: cipher });
  }

  hasHubToken(): boolean {
    return this.settings.get().hubTokenEncrypted !== undefined;
  }

  /** Main-process use only (never sent to the renderer). */
  getHubToken(): string | null {
    const cipher = this.settings.get().hubTokenEncrypted;
    if (cipher === undefined || !this.box) return null;
    return this.box.decryptString(Buffer.from(cipher, 'base64'));
  }

  clearHubToken(): boolean {
    const had = this.hasHubToken();
    this.settings.update({ hubTokenEncrypted: undefined });
    return had;
  }
}
