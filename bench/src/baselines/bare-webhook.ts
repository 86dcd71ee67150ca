// Baseline (a) of the webhook scenario: a bare Fastify app (no logger, no storage) whose one
// route verifies the same HMAC and parses the same body with the server's own functions,
// then answers like Kioskhub does. Run as a child process: PORT and WEBHOOK_SECRET from env.
import { randomUUID } from 'node:crypto';
import Fastify from 'fastify';
import {
  parseRazorpayEvent,
  verifyRazorpaySignature,
} from '../../../server/src/providers/razorpay/razorpay.webhook.js';

const port = Number(process.env['PORT'] ?? 0);
const secrets = [process.env['WEBHOOK_SECRET'] ?? 'whsec_bench_secret'];

const app = Fastify({ logger: false });
app.removeContentTypeParser('application/json');
app.addContentTypeParser(
  'application/json',
  { parseAs: 'buffer', bodyLimit: 1_048_576 },
  (_req, body, done) => done(null, body),
);
app.get('/healthz', async () => ({ ok: true }));
app.post('/webhooks/razorpay', async (request, reply) => {
  const raw = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
  const signature = request.headers['x-razorpay-signature'];
  if (!verifyRazorpaySignature(raw, typeof signature === 'string' ? signature : undefined, secrets)) {
    return reply
      .code(401)
      .send({ error: { code: 'BAD_SIGNATURE', message: 'X-Razorpay-Signature does not match the body' } });
  }
  const parsed = parseRazorpayEvent(raw, undefined);
  if (parsed.kind !== 'payment')
    return reply.code(400).send({ error: { code: 'VALIDATION_FAILED', message: parsed.kind } });
  return { ok: true, orderId: randomUUID() };
});

await app.listen({ host: '127.0.0.1', port });
console.log(`bare webhook listening on ${port}`);
const stop = () => void app.close().then(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
