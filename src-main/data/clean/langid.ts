/**
 * A small language identifier: Unicode script first (Cyrillic, Greek, Arabic, Hebrew, CJK, Hangul,
 * Devanagari, Thai decide alone), then character-trigram naive Bayes among seven Latin-script languages,
 * with profiles built at load time from the short seed texts below (written for Lathe; no downloads).
 * Good enough to flag off-language documents in a corpus, not to tell close dialects apart.
 */

const SEED: Record<string, string> = {
  en: `the quick answer is that it depends on what you want to do with the wood and how much time you have.
    this is one of the things that we have to think about when we are working in the shop, and there are many
    ways to do it. they said that it would be better to wait until the end of the week, but i think we should
    start now because the weather will change. which of these would you like to read first? there was nothing
    in the house that could not be fixed with a little patience and some good tools. it has been a long time
    since we last talked about this, so let me explain how it works and why it matters for all of us.`,
  de: `die schnelle antwort ist, dass es davon abhängt, was man mit dem holz machen will und wie viel zeit man hat.
    das ist eine der sachen, über die wir nachdenken müssen, wenn wir in der werkstatt arbeiten, und es gibt viele
    wege, es zu tun. sie sagten, dass es besser wäre, bis zum ende der woche zu warten, aber ich denke, wir sollten
    jetzt anfangen, weil sich das wetter ändern wird. welche von diesen möchten sie zuerst lesen? es gab nichts im
    haus, was nicht mit ein wenig geduld und gutem werkzeug repariert werden konnte. es ist schon lange her, dass
    wir zuletzt darüber gesprochen haben, also lass mich erklären, wie es funktioniert und warum es für uns wichtig ist.`,
  fr: `la réponse rapide est que cela dépend de ce que vous voulez faire avec le bois et du temps que vous avez.
    c'est une des choses auxquelles nous devons penser quand nous travaillons dans l'atelier, et il y a beaucoup de
    façons de le faire. ils ont dit qu'il vaudrait mieux attendre la fin de la semaine, mais je pense que nous
    devrions commencer maintenant parce que le temps va changer. lesquels voulez-vous lire en premier? il n'y avait
    rien dans la maison qui ne pouvait pas être réparé avec un peu de patience et de bons outils. cela fait longtemps
    que nous n'en avons pas parlé, alors laissez-moi expliquer comment cela fonctionne et pourquoi c'est important pour nous.`,
  es: `la respuesta rápida es que depende de lo que quieras hacer con la madera y de cuánto tiempo tengas. esta es
    una de las cosas en las que tenemos que pensar cuando trabajamos en el taller, y hay muchas maneras de hacerlo.
    dijeron que sería mejor esperar hasta el final de la semana, pero creo que deberíamos empezar ahora porque el
    tiempo va a cambiar. ¿cuál de estos quieres leer primero? no había nada en la casa que no se pudiera arreglar
    con un poco de paciencia y buenas herramientas. hace mucho tiempo que no hablamos de esto, así que déjame
    explicar cómo funciona y por qué es importante para todos nosotros.`,
  it: `la risposta veloce è che dipende da cosa vuoi fare con il legno e da quanto tempo hai. questa è una delle
    cose a cui dobbiamo pensare quando lavoriamo nella bottega, e ci sono molti modi per farlo. hanno detto che
    sarebbe meglio aspettare fino alla fine della settimana, ma penso che dovremmo cominciare adesso perché il tempo
    cambierà. quale di questi vuoi leggere per primo? non c'era niente nella casa che non si potesse aggiustare con
    un po' di pazienza e degli attrezzi buoni. è passato molto tempo dall'ultima volta che ne abbiamo parlato, quindi
    lascia che ti spieghi come funziona e perché è importante per tutti noi.`,
  pt: `a resposta rápida é que depende do que você quer fazer com a madeira e de quanto tempo você tem. esta é uma
    das coisas em que temos de pensar quando trabalhamos na oficina, e há muitas maneiras de fazer isso. eles disseram
    que seria melhor esperar até o fim da semana, mas eu acho que devíamos começar agora porque o tempo vai mudar.
    qual destes você quer ler primeiro? não havia nada na casa que não pudesse ser consertado com um pouco de
    paciência e boas ferramentas. faz muito tempo que não falamos sobre isso, então deixe-me explicar como funciona
    e por que isso é importante para todos nós.`,
  nl: `het snelle antwoord is dat het afhangt van wat je met het hout wilt doen en hoeveel tijd je hebt. dit is een
    van de dingen waar we over moeten nadenken als we in de werkplaats werken, en er zijn veel manieren om het te
    doen. ze zeiden dat het beter zou zijn om tot het einde van de week te wachten, maar ik denk dat we nu moeten
    beginnen omdat het weer gaat veranderen. welke van deze wil je eerst lezen? er was niets in het huis dat niet
    met een beetje geduld en goed gereedschap gerepareerd kon worden. het is lang geleden dat we hier voor het laatst
    over spraken, dus laat me uitleggen hoe het werkt en waarom het voor ons allemaal belangrijk is.`,
};

/** Common function words per language (also used by the quality filter's stop-word check). */
export const STOP_WORDS: Record<string, string[]> = {
  en: 'the of and to in is that it for was on with as be at by this have from or are not but they you he she we his her which will would there their what been one all were when can an if has'.split(' '),
  de: 'der die das und ist nicht ich sie es zu den mit sich des auf für ein eine dem von wir auch wie aber oder wenn wird sind war haben noch nur nach bei'.split(' '),
  fr: 'le la les et est des une un du que qui dans pour pas sur au avec il elle nous vous sont mais ou par plus ce cette ne se en'.split(' '),
  es: 'el la los las y es de que en un una por con no para se del al como pero más sus le ya o este sí porque esta entre cuando muy sin sobre'.split(' '),
  it: 'il lo la gli le e è di che un una per con non del della si sono ma come anche più nel alla questo quando perché'.split(' '),
  pt: 'o a os as e é de que em um uma para com não do da se no na por mais mas como ao dos das foi quando muito também'.split(' '),
  nl: 'de het een en van is dat in op te niet zijn voor met ook maar als bij er om dan wat nog hij zij wij door naar'.split(' '),
};
export const ALL_STOP_WORDS: ReadonlySet<string> = new Set(Object.values(STOP_WORDS).flat());

/**
 * Trigram keys are small integers (three 10-bit character codes; V8 hashes these fastest) and each key maps to the
 * log-probabilities of all languages at once: one Map lookup per trigram for the whole model.
 */
interface Model {
  langs: string[];
  /** Open-addressing table: keys[slot] = trigram key (0 = empty), rows[slot] = row index into logp. */
  keys: Int32Array;
  rows: Int32Array;
  shift: number;
  /**
   * Row-major [row][language] log-probabilities, rows padded to 8 languages (so scoring keeps eight
   * running sums in registers); row 0 holds the unseen-trigram values.
   */
  logp: Float64Array;
  /**
   * Row of every trigram made of the 28 most common folded characters (space, apostrophe, a-z):
   * direct[(i << 10) | (j << 5) | k] by SMALL index, no hashing (most trigrams of Latin-script text).
   */
  direct: Int32Array;
}

/** Index 0-27 of space, apostrophe and a-z among the folded characters (32 = any other: bit 5 marks it). */
const SMALL = new Uint8Array(0x400).fill(32);
SMALL[32] = 0; SMALL[39] = 1;
for (let c = 97; c <= 122; c++) SMALL[c] = c - 95;

function slotOf(m: Model, key: number): number {
  const mask = m.keys.length - 1;
  let i = Math.imul(key, 0x9e3779b1) >>> m.shift;
  for (;;) {
    const k = m.keys[i]!;
    if (k === key) return m.rows[i]!;
    if (k === 0) return 0;
    i = (i + 1) & mask;
  }
}

/** Letters lower-cased, everything else a space; apostrophes kept (l'atelier, don't). */
function cleanChars(text: string, limit: number): string {
  return ' ' + text.slice(0, limit).toLowerCase().replace(/[^\p{L}']+/gu, ' ') + ' ';
}

function forEachTrigram(s: string, f: (key: number) => void): void {
  for (let i = 0; i + 3 <= s.length; i++) {
    const b = s.charCodeAt(i + 1);
    if (b === 32) continue; // "x y" spans two words: noise
    f(((s.charCodeAt(i) & 0x3ff) << 20) | ((b & 0x3ff) << 10) | (s.charCodeAt(i + 2) & 0x3ff));
  }
}

/** Below U+0250: letters lower-cased, apostrophe kept, everything else a space (one load per character). */
const FOLD = new Uint16Array(0x250);
for (let c = 0; c < 0x250; c++) {
  FOLD[c] = (c >= 97 && c <= 122) || c === 39 ? c
    : c >= 65 && c <= 90 ? c + 32
      : c >= 0xc0 && c !== 0xd7 && c !== 0xf7 ? String.fromCharCode(c).toLowerCase().charCodeAt(0)
        : 32;
}

/** Row width of Model.logp. */
const W = 8;

let MODEL: Model | null = null;
function model(): Model {
  if (MODEL) return MODEL;
  const langs = Object.keys(SEED);
  const counts = langs.map((lang) => {
    // Stop words are added three times: they are the most frequent and most telling trigrams.
    const stop = STOP_WORDS[lang]!.join(' ');
    const m = new Map<number, number>();
    forEachTrigram(cleanChars(`${SEED[lang]} ${stop} ${stop} ${stop}`, 1e9), (k) => m.set(k, (m.get(k) ?? 0) + 1));
    return m;
  });
  const alpha = 0.5; // add-half smoothing
  const vocab = 20000;
  const unseen = new Float64Array(langs.length);
  const totals = counts.map((m) => { let t = 0; for (const v of m.values()) t += v; return t; });
  totals.forEach((t, i) => (unseen[i] = Math.log(alpha / (t + alpha * vocab))));
  const all = [...new Set(counts.flatMap((m) => [...m.keys()]))];
  const L = langs.length;
  if (L > W) throw new Error(`langid: at most ${W} Latin-script profiles`);
  const logp = new Float64Array((all.length + 1) * W);
  logp.set(unseen, 0);
  let bits = 4;
  while (1 << bits < all.length * 2) bits++;
  const keys = new Int32Array(1 << bits);
  const rows = new Int32Array(1 << bits);
  const m: Model = { langs, keys, rows, shift: 32 - bits, logp, direct: new Int32Array(1 << 15) };
  all.forEach((k, r) => {
    const row = r + 1;
    counts.forEach((cm, li) => { const v = cm.get(k); logp[row * W + li] = v ? Math.log((v + alpha) / (totals[li]! + alpha * vocab)) : unseen[li]!; });
    let i = Math.imul(k, 0x9e3779b1) >>> m.shift;
    while (keys[i] !== 0) i = (i + 1) & (keys.length - 1);
    keys[i] = k;
    rows[i] = row;
  });
  const small = [...SMALL.keys()].filter((c) => SMALL[c] !== 32);
  for (const a of small) for (const b of small) for (const c of small) {
    m.direct[(SMALL[a]! << 10) | (SMALL[b]! << 5) | SMALL[c]!] = slotOf(m, (a << 20) | (b << 10) | c);
  }
  MODEL = m;
  return MODEL;
}

const SCRIPTS: [RegExp, string][] = [
  [/\p{Script=Cyrillic}/u, 'ru'], [/\p{Script=Greek}/u, 'el'], [/\p{Script=Arabic}/u, 'ar'], [/\p{Script=Hebrew}/u, 'he'],
  [/[\p{Script=Hiragana}\p{Script=Katakana}]/u, 'ja'], [/\p{Script=Hangul}/u, 'ko'], [/\p{Script=Han}/u, 'zh'],
  [/\p{Script=Devanagari}/u, 'hi'], [/\p{Script=Thai}/u, 'th'],
];

/** Index into SCRIPTS + 1 of each UTF-16 code unit at or above U+0250 (0: none of them), found once per code unit. */
const SCRIPT_OF = new Uint8Array(65536);
const SCRIPT_KNOWN = new Uint8Array(65536);
function scriptOf(text: string, i: number): number {
  const c = text.charCodeAt(i);
  if (SCRIPT_KNOWN[c]) return SCRIPT_OF[c]!;
  // Surrogates: the script depends on the pair; tested each time (rare).
  const ch = text[i]!;
  let k = 0;
  for (let j = 0; j < SCRIPTS.length; j++) if (SCRIPTS[j]![0].test(ch)) { k = j + 1; break; }
  if (c < 0xd800 || c > 0xdfff) { SCRIPT_OF[c] = k; SCRIPT_KNOWN[c] = 1; }
  return k;
}

/**
 * Identifies the language of the first 600 characters of `text`. `confidence` is the softmax
 * probability margin of the best language over the runner-up (0..1), per trigram.
 */
export function identifyLanguage(text: string): { lang: string; confidence: number } {
  const m = model();
  const L = m.langs.length;
  const lp = m.logp;
  const direct = m.direct;
  // Eight independent running sums (one per language slot): no memory round trip per trigram.
  let s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0;
  const end = Math.min(text.length, 600); // plenty for these languages, and cheap
  let latin = 0, n = 0;
  let other: Map<string, number> | null = null;
  // One pass: letters lower-cased, everything else one space; trigrams rolled from the last 3 chars.
  let p2 = 32, p1 = 32;
  for (let i = 0; i <= end; i++) {
    let c = i === end ? 32 : text.charCodeAt(i);
    if (c < 0x250) {
      c = FOLD[c]!;
      if (c !== 32 && c !== 39) latin++;
    } else {
      const k = scriptOf(text, i);
      if (k) { const lang = SCRIPTS[k - 1]![1]; other ??= new Map(); other.set(lang, (other.get(lang) ?? 0) + 1); }
      c = 32;
    }
    if (c === 32 && p1 === 32) continue; // collapse runs of non-letters
    if (p1 !== 32) { // "x y" trigrams span two words: skipped, as when building the profiles
      const i2 = SMALL[p2 & 0x3ff]!, i1 = SMALL[p1 & 0x3ff]!, i0 = SMALL[c & 0x3ff]!;
      const b = W * (((i2 | i1 | i0) & 32) === 0 ? direct[(i2 << 10) | (i1 << 5) | i0]! : slotOf(m, ((p2 & 0x3ff) << 20) | ((p1 & 0x3ff) << 10) | (c & 0x3ff)));
      s0 += lp[b]!; s1 += lp[b + 1]!; s2 += lp[b + 2]!; s3 += lp[b + 3]!;
      s4 += lp[b + 4]!; s5 += lp[b + 5]!; s6 += lp[b + 6]!; s7 += lp[b + 7]!;
      n++;
    }
    p2 = p1;
    p1 = c;
  }
  if (other) {
    let bestScript = '', bestN = 0;
    for (const [l, c] of other) if (c > bestN) { bestN = c; bestScript = l; }
    // Japanese text mixes Han with kana: any kana decides Japanese.
    if (bestScript === 'zh' && (other.get('ja') ?? 0) > bestN * 0.05) bestScript = 'ja';
    if (bestN > latin) return { lang: bestScript, confidence: Math.min(1, bestN / (bestN + latin)) };
  }
  if (n < 10) return { lang: 'unknown', confidence: 0 };
  const score = [s0, s1, s2, s3, s4, s5, s6, s7].slice(0, L);
  let b1 = 0;
  for (let k = 1; k < L; k++) if (score[k]! > score[b1]!) b1 = k;
  let b2 = b1 === 0 ? 1 : 0;
  for (let k = 0; k < L; k++) if (k !== b1 && score[k]! > score[b2]!) b2 = k;
  // Per-trigram log-likelihood gap -> probability that the best beats the runner-up.
  const gap = (score[b1]! - score[b2]!) / n;
  return { lang: m.langs[b1]!, confidence: 1 - Math.exp(-gap * 4) };
}
