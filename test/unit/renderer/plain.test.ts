import { describe, expect, it } from 'vitest';
import { candidateKind, jobName, jobTimes, maskWords, piiWords, similarityWords, tokenLabel, tokenText } from '../../../src-renderer/lib/plain';
import { fmtAbout, fmtBytes, fmtMiB } from '../../../src-renderer/lib/format';
import { droppedPaths, fileUris } from '../../../src-renderer/lib/drop';
import { dialogOptions, firstChoice } from '../../../src-main/app/dialogs';
import { PII_TYPES_FOR_TEST } from './pii-types';

describe('units', () => {
  it('one decimal system: GB from 1 GB, MB below, kB for small; MiB from the services converted', () => {
    expect(fmtBytes(0)).toBe('0 bytes');
    expect(fmtBytes(999)).toBe('999 bytes');
    expect(fmtBytes(1500)).toBe('1.5 kB');
    expect(fmtBytes(54_700_000)).toBe('54.7 MB');
    expect(fmtBytes(79_800_000_000)).toBe('79.8 GB');
    expect(fmtBytes(1e12)).toBe('1,000 GB');
    expect(fmtBytes(NaN)).toBe('—');
    expect(fmtMiB(1024)).toBe('1.07 GB'); // 1024 MiB = 1.07e9 bytes
    expect(fmtMiB(0.0547)).toBe('57.4 kB');
    expect(fmtMiB(81.6)).toBe('85.6 MB');
  });

  it('durations in plain words', () => {
    expect(fmtAbout(0.2)).toBe('about 1 s');
    expect(fmtAbout(42)).toBe('about 42 s');
    expect(fmtAbout(12 * 60 + 20)).toBe('about 12 min');
    expect(fmtAbout(3 * 3600 + 20 * 60)).toBe('about 3 h 20 min');
    expect(fmtAbout(2 * 3600 + 59.8 * 60)).toBe('about 3 h');
  });
});

describe('plain words', () => {
  it('jobs have names and times', () => {
    expect(jobName('train')).toBe('Training');
    expect(jobName('import-adapter')).toBe('Importing an adapter');
    expect(jobName('some-new-kind')).toBe('Some new kind');
    const t = new Date(2026, 11, 7, 14, 5, 0).getTime();
    expect(jobTimes(new Date(t).toISOString(), t + 185_000, false)).toBe('started 14:05, running for 3 min 5 s');
    expect(jobTimes(new Date(t).toISOString(), t + 185_000, true)).toBe('started 14:05');
    expect(jobTimes('garbage', t, true)).toBe('');
  });

  it('personal-data kinds in words, for every kind the scrubber reports', () => {
    expect(piiWords('creditCard')).toBe('credit card numbers');
    expect(piiWords('nationalId')).toBe('national ID numbers');
    expect(piiWords('someNewThing')).toBe('some new thing');
    for (const k of PII_TYPES_FOR_TEST) { expect(piiWords(k)).not.toBe(k); expect(piiWords(k)).not.toMatch(/[a-z][A-Z]/); }
  });

  it('token pieces as readable text, not fragments', () => {
    expect(tokenText('Ġturning')).toEqual({ text: 'turning', startsWord: true, fragment: false });
    expect(tokenText('ck')).toEqual({ text: 'ck', startsWord: false, fragment: true });
    expect(tokenLabel('ck')).toBe('“ck” (part of a word)');
    expect(tokenLabel('␣p')).toBe('“p” (start of a word)');
    expect(tokenLabel(' gouge')).toBe('“gouge” (start of a word)');
    expect(tokenText('aĊb').text).toBe('a\nb');
    expect(candidateKind('merge')).toBe('joins two existing pieces');
  });

  it('masks and near duplicates in words', () => {
    for (const m of ['prefix', 'generation', 'sentinel']) expect(maskWords(m)).toMatch(/^The model learns from the assistant's replies only \(/);
    expect(maskWords(null)).toBe('');
    expect(maskWords('prefix')).not.toContain('mask');
    expect(similarityWords(0.94)).toBe('about 94% of their wording is the same');
  });
});

describe('drops and native dialogs', () => {
  const file = (name: string) => ({ name } as File);
  it('uses Electron paths, then file:// addresses, else says only the name came', () => {
    expect(droppedPaths({ files: [file('a')] }, () => '/home/me/a').paths).toEqual(['/home/me/a']);
    expect(droppedPaths({ files: [file('notes')], getData: (f) => (f === 'text/uri-list' ? '# c\r\nfile:///home/me/my%20notes\r\nhttps://x/y' : '') }).paths).toEqual(['/home/me/my notes']);
    const named = droppedPaths({ files: [file('notes')], getData: () => '' });
    expect(named.paths).toEqual([]);
    expect(named.note).toContain('"notes"');
    expect(named.note).toMatch(/only tells Lathe the name/);
    expect(droppedPaths({ files: [], getData: (f) => (f === 'text/plain' ? '/srv/corpus' : '') }).paths).toEqual(['/srv/corpus']);
    expect(fileUris('file://otherhost/x\nfile:///C:/Users/me/x')).toEqual(['C:/Users/me/x']);
  });

  it('native dialog policy: one item, the kind asked for', () => {
    expect(dialogOptions({ pick: 'folder', title: 'Choose' })).toEqual({ title: 'Choose', properties: ['openDirectory', 'createDirectory', 'dontAddToRecent'] });
    expect(dialogOptions({ pick: 'file', title: '', defaultPath: '/home/me' })).toEqual({ title: 'Choose a file', properties: ['openFile', 'dontAddToRecent'], defaultPath: '/home/me' });
    expect(firstChoice({ canceled: true, filePaths: ['/x'] })).toBeNull();
    expect(firstChoice({ canceled: false, filePaths: ['/x', '/y'] })).toBe('/x');
  });
});
