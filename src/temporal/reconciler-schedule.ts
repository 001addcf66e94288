import { ScheduleAlreadyRunning, ScheduleNotFoundError, ScheduleOverlapPolicy, type Client } from '@temporalio/client';
import type { Duration } from '@temporalio/common';
import { RECONCILE_WORKFLOW_TYPE, RECONCILER_SCHEDULE_ID, type ReconcileInput } from '../../workflows/definitions';

export interface ReconcilerSettings {
  /** How often it runs; null: turned off (`RECONCILE_EVERY=off`). */
  every: Duration | null;
  lookback: Duration;
  stuckAfter: Duration;
  taskQueue: string;
}

/** The note a pause by `RECONCILE_EVERY=off` leaves on the Schedule: only such a pause is undone by a worker start. */
export const TURNED_OFF_NOTE = 'turned off by RECONCILE_EVERY=off';

/**
 * Creates the reconciler's Temporal Schedule, or brings an existing one in line with this
 * worker's configuration. Idempotent, and safe when several workers start at once: the losers
 * of the create race update it to the same settings. Visible in the Temporal UI under Schedules.
 * An operator's pause (in the UI or the CLI) survives every deploy: a start only undoes the
 * pause `RECONCILE_EVERY=off` made, once the setting is back on.
 */
export async function ensureReconcilerSchedule(client: Client, settings: ReconcilerSettings): Promise<'created' | 'updated' | 'paused' | 'absent'> {
  const handle = client.schedule.getHandle(RECONCILER_SCHEDULE_ID);
  if (!settings.every) {
    try {
      // An operator's pause stays theirs (with its note), so turning the setting on again cannot undo it.
      if (!(await handle.describe()).state.paused) await handle.pause(TURNED_OFF_NOTE);
      return 'paused';
    } catch (err) {
      if (err instanceof ScheduleNotFoundError) return 'absent';
      throw err;
    }
  }
  const input: ReconcileInput = { lookback: settings.lookback, stuckAfter: settings.stuckAfter };
  const spec = { intervals: [{ every: settings.every }] };
  const action = {
    type: 'startWorkflow' as const,
    workflowType: RECONCILE_WORKFLOW_TYPE,
    workflowId: RECONCILER_SCHEDULE_ID,
    taskQueue: settings.taskQueue,
    args: [input],
    staticSummary: 'Reconciler: Checkout Sessions whose webhooks never arrived',
  };
  // One run at a time; a run missed while Temporal was down is not worth catching up on (the next one looks back as far).
  const policies = { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: '1 minute' as Duration };
  try {
    await client.schedule.create({ scheduleId: RECONCILER_SCHEDULE_ID, spec, action, policies });
    return 'created';
  } catch (err) {
    if (!(err instanceof ScheduleAlreadyRunning)) throw err;
  }
  await handle.update((previous) => {
    const turnedOffBySetting = previous.state.paused && previous.state.note === TURNED_OFF_NOTE;
    return {
      spec,
      action,
      policies,
      state: turnedOffBySetting ? { paused: false, note: 'turned on again: RECONCILE_EVERY is set' } : { paused: previous.state.paused, note: previous.state.note },
    };
  });
  return 'updated';
}
