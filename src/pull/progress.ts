/**
 * Progress of a pull on stderr. On a terminal it redraws one line per
 * layer; otherwise (logs, CI) it prints a line when a layer changes state
 * and at most every few seconds while bytes flow.
 */
export type LayerState = 'waiting' | 'remote' | 'exists' | 'downloading' | 'downloaded' | 'applying' | 'done';

interface LayerProgress {
  digest: string;
  state: LayerState;
  done: number;
  total: number;
}

export interface ProgressSink {
  layer(digest: string, state: LayerState, done?: number, total?: number): void;
  message(text: string): void;
  finish(): void;
}

export function createProgress(stream: NodeJS.WriteStream = process.stderr, quiet = false): ProgressSink {
  if (quiet) return { layer: () => {}, message: () => {}, finish: () => {} };
  return stream.isTTY ? new TerminalProgress(stream) : new LineProgress(stream);
}

function short(digest: string): string {
  return digest.replace(/^sha256:/, '').slice(0, 12);
}

function mib(bytes: number): string {
  return `${(bytes / 1048576).toFixed(1)} MiB`;
}

function describe(p: LayerProgress): string {
  const bytes = p.total > 0 ? ` ${mib(p.done)}/${mib(p.total)}` : '';
  return `layer ${short(p.digest)}: ${p.state}${p.state === 'downloading' ? bytes : ''}`;
}

class LineProgress implements ProgressSink {
  private readonly lastPrint = new Map<string, number>();
  constructor(private readonly stream: NodeJS.WriteStream) {}

  layer(digest: string, state: LayerState, done = 0, total = 0): void {
    const now = Date.now();
    const key = `${digest}|${state}`;
    if (state === 'downloading' && now - (this.lastPrint.get(key) ?? 0) < 5000 && done < total) return;
    this.lastPrint.set(key, now);
    this.stream.write(`${describe({ digest, state, done, total })}\n`);
  }

  message(text: string): void {
    this.stream.write(`${text}\n`);
  }

  finish(): void {}
}

class TerminalProgress implements ProgressSink {
  private readonly layers = new Map<string, LayerProgress>();
  private drawn = 0;
  private timer: NodeJS.Timeout;

  constructor(private readonly stream: NodeJS.WriteStream) {
    this.timer = setInterval(() => this.draw(), 200);
    this.timer.unref();
  }

  layer(digest: string, state: LayerState, done = 0, total = 0): void {
    this.layers.set(digest, { digest, state, done, total });
  }

  message(text: string): void {
    this.clear();
    this.stream.write(`${text}\n`);
    this.draw();
  }

  finish(): void {
    clearInterval(this.timer);
    this.draw();
  }

  private clear(): void {
    if (this.drawn > 0) this.stream.write(`\x1b[${this.drawn}A\x1b[J`);
    this.drawn = 0;
  }

  private draw(): void {
    this.clear();
    const lines = [...this.layers.values()].map((p) => {
      if (p.state !== 'downloading' || p.total === 0) return describe(p);
      const width = 30;
      const filled = Math.round((p.done / p.total) * width);
      return `${describe(p)} [${'='.repeat(filled)}${' '.repeat(width - filled)}]`;
    });
    if (lines.length > 0) this.stream.write(`${lines.join('\n')}\n`);
    this.drawn = lines.length;
  }
}
