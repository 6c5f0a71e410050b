#!/usr/bin/env node
// Writes the bundled sample corpora (original text, written for Lathe):
//   sample/  ~150 KB of woodturning workshop notes (domain), with planted duplicates, near-duplicates,
//            personal data, boilerplate footers and junk so every cleaning step has something to show.
//   general/ ~100 KB of everyday general text, mixed in to keep general ability.
// Deterministic (seeded); run `node resources/corpus/generate.mjs` to regenerate.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
let seed = 20240611;
const rand = () => { seed = (seed + 0x6d2b79f5) | 0; let t = Math.imul(seed ^ (seed >>> 15), 1 | seed); t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t; return ((t ^ (t >>> 14)) >>> 0) / 4294967296; };
const pick = (xs) => xs[Math.floor(rand() * xs.length)];
const shuffle = (xs) => { const a = [...xs]; for (let i = a.length - 1; i > 0; i--) { const j = Math.floor(rand() * (i + 1)); [a[i], a[j]] = [a[j], a[i]]; } return a; };
const fill = (s, slots) => s.replace(/\{(\w+)\}/g, (_, k) => pick(slots[k]));

const W = {
  wood: ['ash', 'cherry', 'walnut', 'maple', 'oak', 'sycamore', 'beech', 'yew', 'olive', 'elm', 'birch', 'pear'],
  size: ['six inch', 'eight inch', 'ten inch', 'twelve inch', 'small', 'shallow', 'deep'],
  speed: ['500', '600', '800', '1000', '1200', '1500', '1800'],
  tool: ['bowl gouge', 'spindle gouge', 'skew chisel', 'parting tool', 'round-nose scraper', 'roughing gouge', 'negative rake scraper'],
  angle: ['35', '40', '45', '55', '60', '70'],
  grit: ['120', '150', '180', '240', '320', '400'],
  finish: ['Danish oil', 'friction polish', 'paste wax', 'walnut oil', 'shellac', 'hard wax oil'],
  item: ['bowl', 'platter', 'goblet', 'pen blank', 'candlestick', 'spindle', 'box', 'vase', 'chair leg', 'rolling pin'],
  who: ['my neighbour', 'a club member', 'the demonstrator', 'an old turner I know', 'my teacher', 'a visitor to the shop'],
  time: ['this morning', 'last weekend', 'on Tuesday', 'yesterday evening', 'over the winter', 'at the club night'],
};

const DOMAIN = {
  sharpening: [
    'The {tool} was dull again {time}, so I took it to the grinder before starting on the {wood}.',
    'A bevel of about {angle} degrees works for most of my cuts, although a steeper one holds up better on hard wood.',
    'I keep the wheel dressed so that it cuts cool and does not glaze over with steel dust.',
    'After grinding I touch the edge with a diamond hone, which takes a few seconds and makes the first cuts much cleaner.',
    'If the shavings turn to dust instead of ribbons, the edge is gone and no amount of pushing will fix it.',
    'The jig lets me repeat the same grind every time, which matters more than which grind I choose.',
    'Swept-back wings on the {tool} let me shear scrape the inside of a {item} without changing tools.',
    '{who} showed me how to check an edge by sliding it across a thumbnail; a sharp edge bites instead of skating.',
    'Grinding too hard blues the steel at the tip, and on carbon steel that temper is lost for good.',
    'I mark the bevel with a felt pen so I can see where the wheel is actually touching.',
    'A slow-speed grinder is kinder to thin tools than a fast one, and it throws fewer sparks.',
    'Honing the flute with a slip stone removes the burr that the grinder leaves behind.',
  ],
  bowls: [
    'The {size} {wood} {item} started as a rough blank mounted on a screw chuck.',
    'I ran the lathe at around {speed} rpm until the blank was round and the vibration stopped.',
    'Cutting from the rim toward the foot follows the grain on the outside of a bowl and avoids tear-out.',
    'Inside the bowl the cut goes the other way, from the rim down toward the centre.',
    'A tenon of about two inches suits my chuck jaws; it must have a clean shoulder to seat against.',
    'Wet wood turns beautifully, but a bowl roughed green needs months to dry before the final turning.',
    'I leave the walls about ten percent of the diameter thick when rough turning, so the bowl can move as it dries.',
    'The end grain on two sides of a bowl tears more easily, so I take lighter cuts as I pass over it.',
    'Listening to the cut tells me a lot: a steady hiss means the bevel is rubbing, a chatter means it is not.',
    '{who} finished a {size} bowl in {wood} {time} and the figure in it was remarkable.',
    'Reverse mounting the bowl on jam jaws lets me turn away the tenon and shape a proper foot.',
    'Checking the wall thickness with calipers every few cuts saves me from going through the side.',
    'A bowl that goes oval while drying can still be trued up if the walls were left thick enough.',
  ],
  spindles: [
    'Spindle work starts with a roughing gouge to bring the square blank to a cylinder.',
    'The skew chisel gives the cleanest surface on a spindle, but it punishes any lapse of attention.',
    'For the {item} I marked the main diameters with the parting tool and set them with calipers.',
    'Beads and coves are the alphabet of spindle turning, and practice on scrap is never wasted.',
    'A catch with the skew happens when the unsupported part of the edge touches the wood.',
    'Keeping the tool rest close to the work reduces leverage and makes every cut calmer.',
    'Long thin spindles whip in the middle, so I support them with my hand or with a steady rest.',
    'I turned a set of four chair legs in {wood} and matched them against a story stick.',
    'The {tool} works well for the details, provided I roll it so the bevel stays in contact.',
    'Turning between centres means the work can come off and go back on without losing its centre.',
    'For a {item} I start at {speed} rpm and raise the speed once the blank is round.',
    'Sharp corners at the end of a cove come from finishing the cut at the bottom, never climbing uphill.',
  ],
  finishing: [
    'Sanding starts at {grit} grit only if the tool finish is good; otherwise I go back to the tool.',
    'I stop the lathe between grits and sand along the grain to remove the circular scratches.',
    'Each grit must remove the scratches of the one before, or they show up as soon as the finish goes on.',
    'For a {item} that will hold food I use {finish}, which is safe once it has cured.',
    'Several thin coats of {finish} look better than one thick coat, and they dry faster too.',
    'Friction polish gives a quick shine but it wears off where hands touch the piece.',
    'Wiping the surface with a damp cloth raises the grain, and a light sanding after that keeps it smooth.',
    'A buffing wheel with wax brings the sheen up without building a thick film.',
    'Dust from some woods is an irritant, so I wear a mask when sanding and run the extractor.',
    'The {wood} took the {finish} well and the grain came alive after the second coat.',
    'Oily woods such as olive need a wipe with solvent before the finish will stick.',
    'I let each piece rest for a week before deciding whether it needs another coat.',
  ],
  safety: [
    'Before switching on I spin the work by hand to check that it clears the tool rest.',
    'A face shield protects far better than glasses when roughing out a heavy blank.',
    'I never stand in the line of fire when starting the lathe with a new blank.',
    'Loose sleeves, rings and long hair have no place near a spinning chuck.',
    'Cracked or punky wood can fly apart, so I inspect every blank and slow down when in doubt.',
    'The speed dial goes back to zero at the end of each session, so the next start is gentle.',
    'Keeping the floor clear of shavings prevents slips when moving around the lathe.',
    '{who} reminded everyone {time} that the lathe stops only when the switch is off and the work is still.',
    'A sharp tool is a safer tool, because it needs less force and is less likely to catch.',
    'I remove the chuck key every time; leaving it in the chuck is a classic accident.',
  ],
  wood: [
    'Green {wood} cuts like butter and throws long wet ribbons across the workshop.',
    'Spalted wood has wonderful lines, but the soft patches need a very sharp edge and light cuts.',
    'I seal the end grain of fresh logs with wax to slow drying and reduce cracking.',
    'Cutting the pith out of a log is the first step to avoiding splits in a bowl blank.',
    '{who} gave me a load of {wood} {time}, and most of it is now roughed out and drying.',
    'Burr wood is hard to turn because the grain runs in every direction, but the result is worth it.',
    'A moisture meter helps decide when a rough-turned piece is ready for final turning.',
    'Weighing a rough bowl once a week shows when it has stopped losing water.',
    'Some of the best blanks come from firewood piles and garden trees cut down by neighbours.',
    'Dense woods such as yew and olive hold fine detail, which makes them good for small boxes.',
    'Quarter-sawn blanks move less as they dry than blanks cut across the growth rings.',
    'The {wood} from the old orchard had ring shake, so I cut it into smaller pieces for spindles.',
  ],
  chucks: [
    'The four-jaw chuck holds most of my work, either on a tenon or expanding into a recess.',
    'A recess must be shallow and have a slight dovetail, or the jaws will split the base.',
    'A faceplate with good screws is still the safest way to hold a large heavy blank.',
    'Jam chucks made from scrap wood cost nothing and hold a piece for finishing the foot.',
    'Vacuum chucks are convenient for reversing bowls, but they need a good seal and a steady pump.',
    'I check that the chuck is screwed fully onto the spindle before every session.',
    'Pin jaws grip the inside of a small hole, which is handy for pen blanks and small boxes.',
    'Cole jaws with rubber stops hold a finished bowl by its rim while the base is cleaned up.',
    'A worn tenon loses its grip, so I recut it instead of tightening the chuck harder.',
    'The drive centre needs a firm tap into the end grain before the tailstock is brought up.',
  ],
};

const GENERAL = {
  cooking: [
    'Bread dough needs time more than effort, and an overnight rise in the fridge improves the flavour.',
    'A pinch of salt in a sweet sauce makes the other flavours stand out.',
    'Onions cooked slowly over low heat turn sweet and golden after about half an hour.',
    'Fresh herbs go in at the end of cooking, while dried herbs need a little time to soften.',
    'Roasting vegetables at a high temperature gives them crisp edges and a deeper taste.',
    'A sharp kitchen knife is safer than a dull one because it does not slip off the food.',
    'Soup often tastes better on the second day, once the flavours have had time to mingle.',
    'Rice should rest with the lid on for a few minutes after cooking so the grains firm up.',
    'Leftover bread makes good crumbs, croutons or a simple pudding with milk and eggs.',
    'Tasting as you cook is the most reliable way to get the seasoning right.',
  ],
  gardening: [
    'Tomatoes need plenty of sun and steady watering, or the fruit splits after a dry spell.',
    'Compost made from kitchen scraps and leaves improves almost any soil within a year or two.',
    'Planting in the cool of the evening gives seedlings a night to recover before the sun returns.',
    'Mulch keeps moisture in the ground and stops many weeds from getting started.',
    'Bees visit lavender, thyme and other flowering herbs all summer long.',
    'Pruning fruit trees in winter, while they are dormant, shapes them without stressing them.',
    'A rain barrel under the gutter saves a surprising amount of water over a season.',
    'Slugs come out after rain, so the evening is the best time to look for them.',
    'Seeds saved from open-pollinated plants grow true to type the following year.',
    'Raised beds warm up earlier in spring and drain better after heavy rain.',
  ],
  cycling: [
    'Checking the tyre pressure before a ride takes a minute and prevents most flat tyres.',
    'A clean, lightly oiled chain runs quietly and lasts much longer than a neglected one.',
    'Riding in a low gear up steep hills saves the knees and keeps the breathing steady.',
    'Lights and bright clothing make a cyclist visible long before a driver would otherwise notice.',
    'Many cities now have separate lanes that make commuting by bicycle safer and faster.',
    'A small repair kit with a pump, tyre levers and a spare tube fits under the saddle.',
    'Long rides go better with regular small snacks than with one large meal.',
    'Brake pads wear faster in wet weather, so they deserve a look after a rainy month.',
    'Adjusting the saddle height so the knee is slightly bent at the bottom of the stroke avoids strain.',
    'Group rides teach good habits such as signalling clearly and holding a straight line.',
  ],
  weather: [
    'A falling barometer often means that rain or wind is on the way within a day.',
    'Morning fog usually lifts once the sun has warmed the ground for a few hours.',
    'Thunderstorms build on hot afternoons when warm moist air rises quickly.',
    'Frost forms on clear, still nights when the ground loses heat to the open sky.',
    'Coastal towns have milder winters than inland places at the same latitude.',
    'The wind tends to pick up in the afternoon and die down again after sunset.',
    'A ring around the moon is caused by ice crystals high in thin cloud.',
    'Long dry spells make the soil hard, so the first heavy rain often runs straight off.',
    'Snow reflects most of the sunlight that falls on it, which keeps the air above it cold.',
    'Weather forecasts are most reliable for the next two or three days and less so after that.',
  ],
  learning: [
    'Practising a little every day works better than one long session at the weekend.',
    'Explaining an idea to someone else is one of the best ways to find the gaps in your own understanding.',
    'Taking short breaks during study helps the memory hold on to what was learned.',
    'Mistakes are useful when we stop to ask why they happened instead of simply moving on.',
    'Reading aloud helps with a new language because it trains the ear and the mouth together.',
    'A notebook of questions is often more valuable than a notebook of answers.',
    'Learning an instrument teaches patience, since progress is slow and comes in small steps.',
    'Sleep plays a large part in learning, because the brain sorts the day during the night.',
    'Old skills come back quickly after a break, even when they seem to be forgotten.',
    'Good teachers show the reason behind a rule, not just the rule itself.',
  ],
  towns: [
    'The old market square is still the centre of the town, and the weekly market has run for centuries.',
    'Many small railway stations closed in the last century, and some are now cafes or homes.',
    'The river once powered several mills whose stone buildings still stand along the bank.',
    'A library is one of the few places where anyone can spend the day without paying.',
    'Street names often remember trades that have long since disappeared from the town.',
    'The bridge was rebuilt after a flood, but the old stone piers were kept in the new design.',
    'Parks planted a hundred years ago now have trees taller than the houses around them.',
    'Local museums keep the tools, photographs and letters that larger museums overlook.',
    'The bus timetable matters more to many people than any decision made in the town hall.',
    'In summer the evenings are long, and people sit outside until well after dark.',
  ],
};

const TITLES = {
  sharpening: ['Sharpening notes', 'Grinding session', 'Edges and bevels'], bowls: ['Bowl turning log', 'Notes on a bowl', 'Hollowing and walls'],
  spindles: ['Spindle practice', 'Between centres', 'Chair legs and beads'], finishing: ['Finishing notes', 'Sanding and oil', 'Getting a good surface'],
  safety: ['Safety checklist', 'Shop safety', 'Before switching on'], wood: ['Wood and drying', 'Notes on timber', 'Blanks from the log pile'],
  chucks: ['Holding the work', 'Chucks and jaws', 'Mounting notes'],
};

function note(bank, topic, nSent) {
  const own = shuffle(bank[topic]).slice(0, Math.min(nSent, bank[topic].length));
  const others = Object.keys(bank).filter((t) => t !== topic);
  const extra = Array.from({ length: Math.max(0, nSent - own.length) + 2 }, () => pick(bank[pick(others)]));
  const sents = shuffle([...own, ...extra]).map((s) => fill(s, W)).map((s) => s[0].toUpperCase() + s.slice(1));
  const paras = [];
  for (let i = 0; i < sents.length; i += 4) paras.push(sents.slice(i, i + 4).join(' '));
  return paras;
}

const FOOTER = 'Back to the workshop notes index · Contact the club · Subscribe to the newsletter';

function writeAll() {
  const sample = join(here, 'sample');
  const general = join(here, 'general');
  rmSync(sample, { recursive: true, force: true });
  rmSync(general, { recursive: true, force: true });
  for (const d of ['notes', 'forum', 'web']) mkdirSync(join(sample, d), { recursive: true });
  mkdirSync(general, { recursive: true });

  // Domain notes as Markdown; a third carry the site footer (boilerplate across documents).
  const notes = [];
  let n = 0;
  for (let round = 0; round < 14; round++) {
    for (const topic of Object.keys(DOMAIN)) {
      const paras = note(DOMAIN, topic, 10);
      const title = `${pick(TITLES[topic])} (${pick(W.wood)}, ${pick(W.time)})`;
      let text = `# ${title}\n\n${paras.join('\n\n')}\n`;
      if (n % 3 === 0) text += `\n${FOOTER}\n`;
      notes.push(text);
      writeFileSync(join(sample, 'notes', `${String(n).padStart(3, '0')}-${topic}.md`), text);
      n++;
    }
  }
  // Exact duplicates: the same note saved twice under another name.
  for (const i of [3, 17, 42, 77]) writeFileSync(join(sample, 'notes', `copy-of-${String(i).padStart(3, '0')}.md`), notes[i]);
  // Near-duplicates: a few words edited, a sentence appended.
  for (const i of [5, 21, 50, 88, 93]) {
    const edited = notes[i].replace(/ the /, ' our ').replace(/\. /, ', really. ') + '\nEdited later to fix a typo.\n';
    writeFileSync(join(sample, 'notes', `revised-${String(i).padStart(3, '0')}.md`), edited);
  }
  // Personal data and secrets.
  writeFileSync(join(sample, 'notes', 'club-admin.md'), [
    '# Club admin notes',
    '',
    'The membership fee for next year goes to the club account, IBAN GB33 BUKB 2020 1555 5555 55, before the end of January. Questions about the fee can go to the treasurer at treasurer.woodclub@example.org or by phone on +44 161 496 0734.',
    '',
    'For the group order of bowl blanks the supplier took the card 4539 1488 0343 6467 over the phone, which I would rather not do again. The delivery came on a Thursday and the blanks were well sealed, with wax on the end grain of every piece.',
    '',
    'The shop camera is reachable at 192.168.1.40 on the club network, and the stock sheet script uses the key sk-proj-R4nd0mLooking7okenForTheDemo0nly9XyZ to write to the shared sheet. Please do not post either of them on the forum, because the forum is public.',
  ].join('\n'));
  writeFileSync(join(sample, 'notes', 'contact-list.txt'), 'Turning day helpers: Maria Lopez maria.lopez@example.net, 555-867-5309; Tom Becker tom.b@example.com, (555) 201-4477. If you cannot come, tell one of them a few days before so that the lathes and the tools can be shared out again.\n');
  // Junk: keyword spam, a table of numbers, a stub, a non-English note.
  writeFileSync(join(sample, 'notes', 'seo-page.txt'), 'lathe tools cheap lathe tools best lathe tools buy lathe tools discount lathe chisel gouge skew bowl gouge sale offer deal lathe tools cheap lathe tools best price '.repeat(4));
  writeFileSync(join(sample, 'notes', 'speed-table.txt'), 'Diameter  rpm min  rpm max\n' + Array.from({ length: 30 }, (_, i) => `${(i + 1) * 25} mm  ${Math.round(9000 / (i + 1))}  ${Math.round(16000 / (i + 1))}`).join('\n') + '\n');
  writeFileSync(join(sample, 'notes', 'todo.txt'), 'Buy more sandpaper.\n');
  writeFileSync(join(sample, 'notes', 'notiz-de.md'), '# Notiz aus der Werkstatt\n\nDie Schale aus Kirschholz ist fertig, aber die Wand ist an einer Stelle zu dünn geworden. Beim nächsten Mal werde ich die Wandstärke öfter mit dem Taster prüfen und die Drehzahl etwas senken, wenn das Holz anfängt zu vibrieren. Das Öl hat die Maserung sehr schön hervorgehoben, und die Schale steht jetzt im Regal neben den anderen Stücken aus dem Winter.\n');

  // Forum Q&A as JSONL (text field "body"), including one malformed line.
  const forum = [];
  for (let i = 0; i < 40; i++) {
    const topic = pick(Object.keys(DOMAIN));
    const body = note(DOMAIN, topic, 5).join('\n\n');
    forum.push(JSON.stringify({ id: i + 1, user: `turner${100 + i}`, title: `Question about ${topic}`, body }));
    if (i === 11) forum.push('{"id": 99, "user": "broken", "body": "this line was cut off');
  }
  writeFileSync(join(sample, 'forum', 'posts.jsonl'), forum.join('\n') + '\n');

  // A CSV of tips (quoted fields with commas).
  const rows = ['id,tip,author'];
  for (let i = 0; i < 25; i++) {
    const tip = note(DOMAIN, pick(Object.keys(DOMAIN)), 4).join(' ').replace(/"/g, '""');
    rows.push(`${i + 1},"${tip}",${pick(['Ann', 'Bo', 'Chen', 'Dara'])}`);
  }
  writeFileSync(join(sample, 'forum', 'tips.csv'), rows.join('\n') + '\n');

  // Web pages: navigation, scripts and footers are dropped on import.
  for (let i = 0; i < 8; i++) {
    const topic = Object.keys(DOMAIN)[i % 7];
    const paras = note(DOMAIN, topic, 8).map((p) => `<p>${p}</p>`).join('\n');
    writeFileSync(join(sample, 'web', `article-${i + 1}.html`), `<!doctype html><html><head><title>${topic}</title><script>window.track = 1;</script></head>
<body><nav><a href="/">Home</a> | <a href="/tips">Tips</a> | <a href="/shop">Shop</a></nav>
<article><h1>${pick(TITLES[topic])}</h1>
${paras}</article>
<aside>Sponsored: lathe tools at half price</aside>
<footer>© Turning Circle Club · Privacy · Cookies</footer></body></html>
`);
  }

  // General corpus.
  let g = 0;
  for (let round = 0; round < 19; round++) {
    for (const topic of Object.keys(GENERAL)) {
      const paras = note(GENERAL, topic, 8);
      writeFileSync(join(general, `${String(g).padStart(3, '0')}-${topic}.txt`), paras.join('\n\n') + '\n');
      g++;
    }
  }
}

writeAll();
