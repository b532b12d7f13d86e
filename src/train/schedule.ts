// Learning-rate schedules, as pure functions of the optimizer step (so a resumed run recomputes the
// same rate from the step count alone, with no schedule state to save).

export interface CosineSchedule {
  /** Peak learning rate, reached at the end of warm-up. */
  lr: number;
  /** Optimizer steps in the whole run. */
  totalSteps: number;
  /** Steps of linear warm-up from lr·warmupStartFactor to lr (0 = none). */
  warmupSteps?: number;
  warmupStartFactor?: number;
  /** Floor of the cosine decay. */
  minLr?: number;
}

/** Linear warm-up, then cosine decay to minLr at totalSteps (as timm's CosineLRScheduler per step). */
export function cosineLr(schedule: CosineSchedule, step: number): number {
  const { lr, totalSteps } = schedule;
  const warmup = schedule.warmupSteps ?? 0;
  const minLr = schedule.minLr ?? 0;
  if (warmup > 0 && step < warmup) {
    const start = schedule.warmupStartFactor ?? 0.01;
    return lr * (start + ((1 - start) * step) / warmup);
  }
  const span = Math.max(1, totalSteps - warmup);
  const progress = Math.min(1, (step - warmup) / span);
  return minLr + 0.5 * (lr - minLr) * (1 + Math.cos(Math.PI * progress));
}

export function checkSchedule(schedule: CosineSchedule): void {
  if (!(schedule.lr > 0 && Number.isFinite(schedule.lr))) throw new RangeError(`lr must be a positive number, got ${schedule.lr}`);
  if (!(Number.isInteger(schedule.totalSteps) && schedule.totalSteps > 0)) throw new RangeError(`the run must have at least one optimizer step, got ${schedule.totalSteps}`);
  const warmup = schedule.warmupSteps ?? 0;
  if (!(Number.isInteger(warmup) && warmup >= 0)) throw new RangeError(`warm-up steps must be a non-negative integer, got ${warmup}`);
  const minLr = schedule.minLr ?? 0;
  if (!(minLr >= 0 && minLr <= schedule.lr)) throw new RangeError(`minLr must be in [0, lr], got ${minLr}`);
}
