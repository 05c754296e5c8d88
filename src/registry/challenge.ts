// WWW-Authenticate parsing (RFC 7235). A header may carry several
// challenges separated by commas, which are also the separators between
// parameters, so the split has to look ahead: `token =` starts a parameter,
// a bare token starts the next challenge.

export interface AuthChallenge {
  /** Lower-cased scheme: `bearer`, `basic`, ... */
  scheme: string;
  /** Parameter names lower-cased; values unquoted. */
  params: Record<string, string>;
  token68?: string;
}

const TCHAR = /[!#$%&'*+\-.^_`|~0-9A-Za-z]/;
const TOKEN68_CHAR = /[A-Za-z0-9\-._~+/]/;

export function parseWwwAuthenticate(header: string | readonly string[] | undefined): AuthChallenge[] {
  if (header === undefined) return [];
  if (typeof header !== 'string') return header.flatMap((h) => parseWwwAuthenticate(h));
  const s = header;
  const out: AuthChallenge[] = [];
  let i = 0;

  const skipWs = (): void => {
    while (i < s.length && (s[i] === ' ' || s[i] === '\t')) i++;
  };
  const readToken = (): string => {
    const start = i;
    while (i < s.length && TCHAR.test(s[i]!)) i++;
    return s.slice(start, i);
  };
  const readQuoted = (): string => {
    // assumes s[i] === '"'
    i++;
    let v = '';
    while (i < s.length && s[i] !== '"') {
      if (s[i] === '\\' && i + 1 < s.length) i++;
      v += s[i];
      i++;
    }
    i++; // closing quote (or past end on malformed input)
    return v;
  };
  // Looks ahead without consuming: is the text at `i` a `name=` parameter?
  const atParam = (): boolean => {
    const save = i;
    const name = readToken();
    skipWs();
    const ok = name !== '' && s[i] === '=' && s[i + 1] !== '=';
    i = save;
    return ok;
  };

  while (i < s.length) {
    while (i < s.length && (s[i] === ',' || s[i] === ' ' || s[i] === '\t')) i++;
    if (i >= s.length) break;
    const scheme = readToken();
    if (scheme === '') {
      i++; // skip a stray character rather than loop forever on garbage
      continue;
    }
    const challenge: AuthChallenge = { scheme: scheme.toLowerCase(), params: {} };
    out.push(challenge);
    skipWs();
    if (i < s.length && s[i] !== ',' && !atParam()) {
      const start = i;
      while (i < s.length && TOKEN68_CHAR.test(s[i]!)) i++;
      while (i < s.length && s[i] === '=') i++;
      if (i > start) challenge.token68 = s.slice(start, i);
      skipWs();
      continue;
    }
    for (;;) {
      skipWs();
      if (!atParam()) break;
      const name = readToken().toLowerCase();
      skipWs();
      i++; // '='
      skipWs();
      const value = s[i] === '"' ? readQuoted() : readToken();
      challenge.params[name] = value;
      skipWs();
      if (s[i] !== ',') break;
      // Commas separate both parameters and challenges: consume them and
      // let atParam() decide which one follows.
      while (i < s.length && (s[i] === ',' || s[i] === ' ' || s[i] === '\t')) i++;
    }
  }
  return out;
}
