/**
 * One flight per key: the first caller of a key runs the work, callers that
 * arrive while it runs get the same result (or the same error). Nothing is
 * cached after the flight lands; pair it with a cache for that.
 */
export class SingleFlight<T> {
  private readonly flights = new Map<string, Promise<T>>();

  do(key: string, work: () => Promise<T>): Promise<T> {
    const inFlight = this.flights.get(key);
    if (inFlight) return inFlight;
    const flight = (async () => {
      try {
        return await work();
      } finally {
        this.flights.delete(key);
      }
    })();
    this.flights.set(key, flight);
    return flight;
  }

  /** Whether a flight for key is under way. */
  has(key: string): boolean {
    return this.flights.has(key);
  }
}
