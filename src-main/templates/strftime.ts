/**
 * Python's datetime.strftime for the directives chat templates use (Llama 3.x writes "%d %b %Y",
 * SmolLM3 "%d %B %Y"), in UTC and the C locale, so renders do not depend on the machine's settings.
 */
const DAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];
const MONTHS = [
  'January', 'February', 'March', 'April', 'May', 'June',
  'July', 'August', 'September', 'October', 'November', 'December',
];

const pad = (n: number, width = 2): string => String(n).padStart(width, '0');

export function strftime(format: string, date: Date): string {
  return format.replace(/%([a-zA-Z%])/g, (whole, d: string) => {
    const hour = date.getUTCHours();
    switch (d) {
      case 'Y': return String(date.getUTCFullYear());
      case 'y': return pad(date.getUTCFullYear() % 100);
      case 'm': return pad(date.getUTCMonth() + 1);
      case 'd': return pad(date.getUTCDate());
      case 'e': return String(date.getUTCDate()).padStart(2, ' ');
      case 'H': return pad(hour);
      case 'I': return pad(hour % 12 === 0 ? 12 : hour % 12);
      case 'p': return hour < 12 ? 'AM' : 'PM';
      case 'M': return pad(date.getUTCMinutes());
      case 'S': return pad(date.getUTCSeconds());
      case 'f': return pad(date.getUTCMilliseconds() * 1000, 6);
      case 'b': return MONTHS[date.getUTCMonth()]!.slice(0, 3);
      case 'B': return MONTHS[date.getUTCMonth()]!;
      case 'a': return DAYS[date.getUTCDay()]!.slice(0, 3);
      case 'A': return DAYS[date.getUTCDay()]!;
      case 'w': return String(date.getUTCDay());
      case 'j': {
        const start = Date.UTC(date.getUTCFullYear(), 0, 1);
        const today = Date.UTC(date.getUTCFullYear(), date.getUTCMonth(), date.getUTCDate());
        return pad((today - start) / 86_400_000 + 1, 3);
      }
      case 'Z': return 'UTC';
      case 'z': return '+0000';
      case '%': return '%';
      // Python passes unknown directives through unchanged.
      default: return whole;
    }
  });
}
