/**
 * Original text for the tokenizer fixtures (written for Lathe; no third-party text). `general` reads like
 * everyday prose, `domain` like a woodturning and metal-lathe workshop manual with its jargon and symbols.
 * A seeded generator recombines the sentences so the corpora have enough volume for BPE statistics.
 */
import { mulberry32 } from '../../../src-main/util/random';

export const GENERAL_SENTENCES = [
  'The morning train was late again, so we walked to the bakery on the corner and waited there.',
  'She said the garden looked better after the rain, even though half of the tomatoes had split.',
  'Our neighbours are planning a small party for the weekend and have invited everyone on the street.',
  'He wrote a long letter to his sister, folded it twice, and then forgot to post it for a week.',
  'If you leave the window open at night, the room gets cold and the cat sleeps on your feet.',
  'The library closes early on Fridays, which is why the students study in the café instead.',
  'A new road is being built between the two villages, and the old bridge will finally be repaired.',
  'They argued about the film for an hour before agreeing that the ending made no sense at all.',
  'Most people in the town remember the winter when the river froze and children skated on it.',
  'Please bring a coat tomorrow; the forecast says it will be windy in the afternoon.',
  'The museum opened a new room with paintings from the last century and old maps of the coast.',
  'I think the best part of the trip was the evening we spent cooking fish on the beach.',
  'Her brother works at the hospital and often comes home after midnight, tired but cheerful.',
  'The children counted the stars until they fell asleep in the back of the car.',
  'Nobody knew who had left the flowers on the doorstep, but everybody had a theory.',
  'When the power went out, we played cards by candlelight and told stories about the old house.',
  'The committee will meet again next month to decide whether the park needs more benches.',
  'It is easier to learn a language when you have friends who are patient with your mistakes.',
  'The shop sells fresh bread, cheese, fruit and newspapers, and it is open every day of the year.',
  'After the concert the musicians walked through the crowd and thanked people for coming.',
  'Grandmother keeps her recipes in a blue box, written on cards that are stained with flour.',
  'The football match was cancelled because the field was flooded after three days of rain.',
  'We should check the timetable before we leave, because the last bus goes at ten o\'clock.',
  'Some birds fly thousands of kilometres every autumn and return to the same tree in spring.',
  'He laughed so loudly at the joke that the whole restaurant turned around to look at him.',
  'The teacher asked everyone to write a short story about a place they would like to visit.',
  'During the summer holidays the beach is crowded, but in October it is quiet and beautiful.',
  'My phone battery died halfway through the conversation, so I called her back from a friend\'s.',
  'The old clock in the hall has not worked for years, but nobody wants to throw it away.',
  'Farmers in the valley say this year\'s harvest is the best they have seen in a decade.',
];

export const DOMAIN_SENTENCES = [
  'Mount the blank between the headstock and the tailstock, then bring the live center up until it bites.',
  'Set the toolrest about 3 mm below the spindle centerline and check it clears the blank on every turn.',
  'Start the lathe at 500 RPM for a 250 mm bowl blank and raise the speed once the blank runs true.',
  'A bowl gouge with a swept-back grind lets you shear-cut the end grain without tearing the fibres.',
  'Use the skew chisel for planing cuts on spindle work; keep the bevel rubbing and the heel low.',
  'The parting tool should enter the work at centre height, and you must never trap it in the kerf.',
  'Check the Morse taper on the tailstock quill: an MT2 live center will not seat in an MT1 socket.',
  'Tighten the four-jaw chuck evenly, then dial in the runout to within 0.02 mm using a dial indicator.',
  'Turn the tenon to a diameter of Ø 50 mm so the chuck jaws grip it in their perfect-circle position.',
  'Hone the gouge after every few passes; a burr from the grinder dulls quickly on hardwood.',
  'The faceplate screws must go into solid wood at least 20 mm deep before you switch on the spindle.',
  'On the metal lathe, set the compound slide to 29.5° when cutting a 60° thread with a single-point tool.',
  'Measure the bore with a telescoping gauge and a micrometer; the tolerance is ±0.01 mm or 10 µm.',
  'Use the steady rest for long spindles, otherwise the workpiece whips and chatters near the middle.',
  'The carriage handwheel advances the tool 0.1 mm per division, and the cross-slide reads diameter.',
  'Engage the half-nut only when the thread dial shows the right number, or the tool will split the thread.',
  'Coolant keeps the tool tip below 200 °C when facing stainless steel at a feed of 0.15 mm/rev.',
  'A carbide insert with a 0.4 mm nose radius gives a good finish on aluminium at 1200 RPM.',
  'Before sanding, remove the toolrest and banjo so your fingers cannot be pulled between rest and work.',
  'Reverse chucking lets you finish the foot of the bowl; use a jam chuck or vacuum chuck for thin walls.',
  'The drive center has four spurs; tap it into the end grain with a mallet before mounting the blank.',
  'Wet-turned bowls should be rough-turned to a wall thickness of about 10 % of the diameter and left to dry.',
  'Check the headstock alignment by turning a test bar and measuring both ends with the micrometer.',
  'Knurling needs a slow spindle speed, plenty of cutting oil and firm pressure on the cross-slide.',
  'Sharpen the spindle gouge to a fingernail profile with a 35° bevel for detail coves and beads.',
  'Set the quick-change gearbox for 1.5 mm pitch, then cut the thread in passes of 0.1 mm depth.',
  'The tailstock offset method tapers long work: offset = (D − d) × L / (2 × l) for the whole length.',
  'Face off the end, centre-drill it, and support the work with the tailstock before heavy roughing cuts.',
  'Always check that the chuck key is out of the chuck before starting the lathe motor.',
  'The finish cut on the spindle should take no more than 0.05 mm so the tool deflection stays small.',
];

/** Mulberry32: a small seeded PRNG so the corpora are the same on every run. */
export const rng = mulberry32;

/** Paragraphs of 2-5 sentences drawn from `sentences`, with numbers varied. */
export function paragraphs(sentences: string[], count: number, seed: number): string[] {
  const r = rng(seed);
  const out: string[] = [];
  for (let p = 0; p < count; p++) {
    const n = 2 + Math.floor(r() * 4);
    const parts: string[] = [];
    for (let i = 0; i < n; i++) {
      const s = sentences[Math.floor(r() * sentences.length)]!;
      parts.push(s.replace(/\d+(\.\d+)?/g, (m) => (r() < 0.5 ? m : String(Math.round(Number(m) * (0.5 + r()) * 100) / 100))));
    }
    out.push(parts.join(' '));
  }
  return out;
}

/** Varied strings for cross-implementation checks: unicode, emoji, whitespace runs, code, domain words. */
export function varietyStrings(seed: number, count: number, domainWords: string[]): string[] {
  const r = rng(seed);
  const pick = <T>(xs: T[]): T => xs[Math.floor(r() * xs.length)]!;
  const fixed = [
    '', ' ', '  ', '\n', '\t', ' \n \n\n  x', 'a', 'A', '0', '12345678901234567890', '3.14159', '-42', '1,000,000',
    'hello world', 'Hello World', 'HELLO   WORLD', '  leading spaces', 'trailing spaces   ', 'tabs\tand\ttabs',
    'line one\nline two\r\nline three\rline four', 'café naïve résumé coöperate', 'Straße über Ärger',
    'Ελληνικά κείμενα', 'Русский текст для проверки', 'עברית', 'العربية النص', 'हिन्दी पाठ', '日本語のテキスト', '中文文本测试',
    '한국어 텍스트', 'ไทย', '😀', '👍🏽', '👩‍👩‍👧‍👦 family', '🇩🇪🇯🇵', 'e\u0301 (combining acute)', '\u200b zero width',
    'emoji😀in😀words', 'tab\u00a0nbsp', 'x²+y²=z²', '∑∫∂√∞', 'µm ± 0.01 Ø 50 °C', '"quotes" and \'apostrophes\' and `backticks`',
    "it's don't we'll they've I'm you'd", 'function f(x) { return x * 2; }', 'if (a && b || !c) { x[i] = y->z; }',
    '<div class="a">text</div>', 'https://example.com/path?query=1&b=2#frag', 'user@example.org', '#hashtag @mention',
    '~!@#$%^&*()_+{}|:"<>?', '................', '----------', '____', '    indented code', '\n\n\n\n',
    'MiXeD CaSe WoRdS', 'a\u0000b', 'The \u2028 line separator',
  ];
  const out = [...fixed];
  const pieces = [...GENERAL_SENTENCES, ...DOMAIN_SENTENCES];
  while (out.length < count) {
    const k = Math.floor(r() * 6);
    if (k === 0) out.push(pick(pieces));
    else if (k === 1) out.push(`${pick(domainWords)} ${pick(domainWords)}${pick(['', '.', ',', '!', '\n', '  '])}${pick(domainWords)}`);
    else if (k === 2) out.push(pick(pieces).slice(Math.floor(r() * 20), 20 + Math.floor(r() * 60)));
    else if (k === 3) out.push(pick(fixed) + pick([' ', '', '\n', '   ']) + pick(domainWords) + pick(fixed));
    else if (k === 4) out.push(pick(pieces).split(' ').join(pick(['  ', '\t', '\n', ' \n ', '   '])));
    else out.push(pick(pieces).toUpperCase());
  }
  return out;
}
