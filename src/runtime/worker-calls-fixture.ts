import { answerCalls } from "./worker-answers.ts";

/**
 * Worker for worker-calls.test.ts: starts slowly (as loading SQLite does), so
 * calls arrive before it is ready; echoes a call's body, or throws what it is
 * asked to.
 */
const ready = new Promise<string>((resolve) => setTimeout(() => resolve("ready"), 50));

answerCalls(ready, (context, body, progress) => {
  const call = body as { echo?: unknown; fail?: string; steps?: number };
  if (call.fail !== undefined) throw Object.assign(new Error(`asked to fail (${context})`), { code: call.fail });
  for (let i = 0; i < (call.steps ?? 0); i++) progress(i);
  return call.echo;
});
