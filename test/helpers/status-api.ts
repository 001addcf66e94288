/**
 * The status API as a polite client reads it: on 429 it waits as long as `Retry-After` says (the
 * API is rate-limited per client, and all of loopback is one client), then asks again.
 */
export async function fetchStatus(
  baseUrl: string,
  sessionId: string,
): Promise<{ status: number; body: { status?: string } & Record<string, unknown> }> {
  for (;;) {
    const response = await fetch(`${baseUrl}/api/fulfillments/${sessionId}`);
    if (response.status === 429) {
      const seconds = Number(response.headers.get('retry-after') ?? '1');
      await new Promise((resolve) => setTimeout(resolve, (Number.isFinite(seconds) ? seconds : 1) * 1000));
      continue;
    }
    return { status: response.status, body: (await response.json()) as { status?: string } & Record<string, unknown> };
  }
}
