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
}

export class SecretsService {
  constructor(private readonly settings: SettingsService, private readonly box: SecretBox | null) {}

  available(): boolean {
    return this.box !== null && this.box.isEncryptionAvailable();
  }

  setHubToken(token: string): void {
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
