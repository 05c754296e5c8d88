/**
 * Finds a layer's TOC digest when the caller did not pass it: in the
 * manifest the image reference resolves to, as the layer's
 * `containerd.io/snapshot/stargz/toc.digest` annotation. Manifests are
 * fetched once per reference however many layers and pulls ask at once.
 */
import { LRUCache } from 'lru-cache';
import { STARGZ_TOC_DIGEST } from '../../containerd/labels.js';
import type { RegistryClient } from '../../registry/index.js';
import { SingleFlight } from '../../sync/index.js';

interface LayerAnnotations {
  /** layer digest → TOC digest (absent: the layer is not eStargz). */
  tocDigests: Map<string, string | undefined>;
  sizes: Map<string, number>;
}

export interface TocDigestLookup {
  tocDigest: string | undefined;
  /** The layer's compressed size, when the manifest lists the layer. */
  size: number | undefined;
}

export class TocDigestResolver {
  private readonly flights = new SingleFlight<LayerAnnotations>();
  private readonly cache = new LRUCache<string, LayerAnnotations>({ max: 256, ttl: 10 * 60_000 });

  constructor(private readonly registry: RegistryClient) {}

  async lookup(ref: string, layerDigest: string, manifestDigest?: string): Promise<TocDigestLookup> {
    const annotations = await this.annotationsOf(ref, manifestDigest);
    return { tocDigest: annotations.tocDigests.get(layerDigest), size: annotations.sizes.get(layerDigest) };
  }

  /** Every layer of the image, bottom first, with its TOC digest (undefined: not eStargz) and size. */
  async layers(ref: string, manifestDigest?: string): Promise<Array<{ digest: string } & TocDigestLookup>> {
    const annotations = await this.annotationsOf(ref, manifestDigest);
    return [...annotations.tocDigests].map(([digest, tocDigest]) => ({ digest, tocDigest, size: annotations.sizes.get(digest) }));
  }

  private async annotationsOf(ref: string, manifestDigest: string | undefined): Promise<LayerAnnotations> {
    // Pin to the manifest the caller pulled when it says which, so a moved tag cannot mislead us.
    const key = manifestDigest ? `${this.registry.parse(ref).name}@${manifestDigest}` : ref;
    let annotations = this.cache.get(key);
    if (!annotations) {
      annotations = await this.flights.do(key, () => this.fetch(key));
      this.cache.set(key, annotations);
    }
    return annotations;
  }

  private async fetch(ref: string): Promise<LayerAnnotations> {
    const resolved = await this.registry.resolve(ref);
    const tocDigests = new Map<string, string | undefined>();
    const sizes = new Map<string, number>();
    for (const layer of resolved.manifest.layers) {
      tocDigests.set(layer.digest, layer.annotations?.[STARGZ_TOC_DIGEST]);
      sizes.set(layer.digest, layer.size);
    }
    return { tocDigests, sizes };
  }
}
