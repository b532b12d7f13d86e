// A dry run: what a method would adapt on a model, found by applying it for real (so the listing
// can never disagree with training) and detaching it again.
import type { VisionModel } from '../../models/base.js';
import { applyDelta, type DeltaOptions } from './delta.js';

export interface DeltaPlan {
  method: string;
  model: string;
  /** The method's options with every default filled in. */
  config: Record<string, unknown>;
  /** Modules the delta adds, with the base module each belongs to. */
  added: { name: string; owner: string; type: string; parameters: number }[];
  /** Base parameters the delta trains (their values become part of the delta). */
  trainedBase: string[];
  /** The head: the model's own copied (same classes) or a fresh one. */
  head: { path: string; classes: number; fresh: boolean };
  trainable: number;
  total: number;
  percent: number;
}

/** Lists what `applyDelta(model, options)` would change, leaving the model as it was. */
export function planDelta(model: VisionModel, options: DeltaOptions): DeltaPlan {
  const classesBefore = model.config.numClasses;
  const delta = applyDelta(model, options);
  try {
    const addedNames = delta.addedModules.map(([n]) => `${n}.`);
    const head = `${model.config.classifier}.`;
    const trainedBase = delta
      .namedTrainableParameters()
      .map(([n]) => n)
      .filter((n) => !n.startsWith(head) && !addedNames.some((a) => n.startsWith(a)));
    const summary = delta.summary();
    return {
      method: delta.method,
      model: model.config.name,
      config: { ...delta.config },
      added: delta.addedModules.map(([name, m]) => ({ name, owner: name.slice(0, Math.max(0, name.lastIndexOf('.'))), type: m.constructor.name, parameters: m.numParameters() })),
      trainedBase,
      head: { path: model.config.classifier, classes: delta.head.outFeatures, fresh: delta.head.outFeatures !== classesBefore },
      trainable: summary.trainable,
      total: summary.total,
      percent: summary.percent,
    };
  } finally {
    delta.dispose();
  }
}
