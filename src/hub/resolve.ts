// From "weights" as a user writes them (a file, or a name) to a file on disk and what the weights
// bring to the model's config: async (downloads what is missing) for the CLI and training, and a
// synchronous cache lookup for createModel.
import { existsSync } from 'node:fs';
import type { WeightsConfig } from './catalog-types.js';
import { isWeightsName, parseWeightsName, readHfConfig, sourceFiles, torchvisionConfig, type HubFile, type WeightsSource } from './catalog.js';
import { DownloadError, downloadFile, offlineFromEnvironment, type DownloadOptions } from './download.js';
import { createTransferProgress } from './progress.js';

export interface ResolvedWeights {
  /** The weights file. */
  path: string;
  /** The name it was resolved from (undefined for a file given by path). */
  name?: string;
  /** The zoo model the weights are for (undefined for a file given by path). */
  model?: string;
  /** Their preprocessing, classes and class names (empty for a file given by path). */
  config: WeightsConfig;
}

export interface ResolveOptions extends Omit<DownloadOptions, 'label'> {
  /** The model the weights are for: completes short names ('IMAGENET1K_V2', 'DEFAULT') and is checked against the weights'. */
  model?: string;
  /** The hub cache directory (default hubCacheDir()). */
  cacheDir?: string;
  /** A base URL to fetch from instead of the public host (or DELTATUNE_TORCHVISION_URL / DELTATUNE_HUB_URL). */
  mirror?: string;
}

/**
 * A file path as is, or a weights name (see parseWeightsName) downloaded into the cache if it is
 * not there yet, with the config the weights bring.
 */
export async function resolveWeights(nameOrPath: string, options: ResolveOptions = {}): Promise<ResolvedWeights> {
  if (!isWeightsName(nameOrPath)) return { path: nameOrPath, config: {} };
  const source = parseWeightsName(nameOrPath, options.model);
  const files = sourceFiles(source, options);
  const needed = [files.config, files.weights].filter((f): f is HubFile => f !== undefined && !existsSync(f.path));
  if (needed.length && (options.offline ?? offlineFromEnvironment())) {
    // Every missing file in one line, so a user placing them by hand needs one look.
    throw new DownloadError(
      `offline (DELTATUNE_OFFLINE=1): ${source.name} is not in the cache; ${needed.map((f) => `download ${f.url} and place it at ${f.path}`).join('; ')}`,
      'offline',
      needed[0]!.url,
    );
  }
  const progress = typeof options.progress === 'object' ? options.progress : createTransferProgress(options.progress ?? 'auto');
  const download = { ...options, progress };
  if (source.kind === 'torchvision') {
    checkModel(source.name, source.model, options.model);
    await downloadFile(files.weights, { ...download, label: source.name });
    return { path: files.weights.path, name: source.name, model: source.model, config: torchvisionConfig(source.entry) };
  }
  // The config first: it names the architecture, so a model mismatch costs no weights download.
  await downloadFile(files.config!, { ...download, label: `${source.name} config.json` });
  const { model, config } = readHfConfig(files.config!.path, source);
  checkModel(source.name, model, options.model);
  await downloadFile(files.weights, { ...download, label: source.name });
  return { path: files.weights.path, name: source.name, model, config };
}

/**
 * A weights name's cached file and config, without any network: null when a file it needs is not
 * in the cache. Throws for an unknown name or weights made for another model.
 */
export function cachedWeights(name: string, options: Pick<ResolveOptions, 'model' | 'cacheDir'> = {}): ResolvedWeights | null {
  const source = parseWeightsName(name, options.model);
  const files = sourceFiles(source, options);
  if (source.kind === 'torchvision') {
    checkModel(source.name, source.model, options.model);
    return existsSync(files.weights.path) ? { path: files.weights.path, name: source.name, model: source.model, config: torchvisionConfig(source.entry) } : null;
  }
  if (!existsSync(files.config!.path)) return null;
  const { model, config } = readHfConfig(files.config!.path, source);
  checkModel(source.name, model, options.model);
  return existsSync(files.weights.path) ? { path: files.weights.path, name: source.name, model, config } : null;
}

/** Where a weights name's file sits (or would sit) in the cache, and what it is called canonically. */
export function weightsLocation(name: string, options: Pick<ResolveOptions, 'model' | 'cacheDir' | 'mirror'> = {}): { source: WeightsSource; path: string; url: string } {
  const source = parseWeightsName(name, options.model);
  const { weights } = sourceFiles(source, options);
  return { source, path: weights.path, url: weights.url };
}

function checkModel(name: string, model: string, wanted: string | undefined): void {
  if (wanted !== undefined && wanted !== model) throw new Error(`weights '${name}' are for ${model}, not ${wanted}`);
}
