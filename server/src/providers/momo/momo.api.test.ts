// The MoMo and Airtel clients against a scripted fetch: token caching and renewal after a 401,
// the documented headers and bodies, idempotent re-sends, refusals, and status normalisation.
import { describe, expect, it } from 'vitest';
import { createAirtelClient, AirtelRefusedError } from '../airtel/airtel.api.js';
import { airtelStatusSource } from '../airtel/airtel.status.js';
import { createMomoClient, MomoRefusedError } from './momo.api.js';
import { momoAmountToMinor, momoStatusSource } from './momo.status.js';
import type { PaymentRow } from '../../platform/db/schema.js';

type Call = { url: string; method: string; headers: Record<string, string>; body?: string };

function scripted(answers: ((call: Call) => { status: number; body?: unknown } | undefined)[]) {
  const calls: Call[] = [];
  const fetchImpl = (async (url: string, init: RequestInit) => {
    const call: Call = {
      url,
      method: init.method ?? 'GET',
      headers: init.headers as Record<string, string>,
      ...(typeof init.body === 'string' ? { body: init.body } : {}),
    };
    calls.push(call);
    for (const answer of answers) {
      const a = answer(call);
      if (a) return new Response(a.body === undefined ? null : JSON.stringify(a.body), { status: a.status });
    }
    return new Response('{}', { status: 599 });
  }) as unknown as typeof fetch;
  return { calls, fetchImpl };
}

const payment = (over: Partial<PaymentRow> = {}) =>
  ({ id: 'pay-1', amount_minor: 15000, currency: 'UGX', ...over }) as PaymentRow;

describe('MoMo client', () => {
  const opts = {
    baseUrl: 'http://momo.test/',
    subscriptionKey: 'sub',
    apiUser: 'user',
    apiKey: 'key',
    targetEnvironment: 'sandbox',
  };

  it('caches its token, renews it after a 401, and sends the documented request', async () => {
    let tokens = 0;
    let rejectNext = false;
    const { calls, fetchImpl } = scripted([
      (c) =>
        c.url.endsWith('/collection/token/')
          ? { status: 200, body: { access_token: `t${++tokens}`, expires_in: 3600 } }
          : undefined,
      (c) =>
        rejectNext && c.method === 'POST' ? ((rejectNext = false), { status: 401, body: {} }) : undefined,
      (c) => (c.method === 'POST' ? { status: 202 } : undefined),
    ]);
    const client = createMomoClient({ ...opts, fetch: fetchImpl });
    const request = {
      referenceId: 'a0c1',
      amount: '15000',
      currency: 'UGX',
      msisdn: '256772123456',
      externalId: 'a0c1',
      payerMessage: 'm',
      payeeNote: 'n',
      callbackUrl: 'https://x/cb',
    };
    expect(await client.requestToPay(request)).toEqual({ alreadyRequested: false });
    expect(await client.requestToPay(request)).toEqual({ alreadyRequested: false });
    expect(tokens).toBe(1);
    rejectNext = true;
    expect(await client.requestToPay(request)).toEqual({ alreadyRequested: false });
    expect(tokens).toBe(2);
    const token = calls[0]!;
    expect(token.headers['Authorization']).toBe(`Basic ${Buffer.from('user:key').toString('base64')}`);
    expect(token.headers['Ocp-Apim-Subscription-Key']).toBe('sub');
    const post = calls[1]!;
    expect(post.url).toBe('http://momo.test/collection/v1_0/requesttopay');
    expect(post.headers).toMatchObject({
      Authorization: 'Bearer t1',
      'X-Reference-Id': 'a0c1',
      'X-Target-Environment': 'sandbox',
      'Ocp-Apim-Subscription-Key': 'sub',
      'X-Callback-Url': 'https://x/cb',
    });
    expect(JSON.parse(post.body!)).toEqual({
      amount: '15000',
      currency: 'UGX',
      externalId: 'a0c1',
      payer: { partyIdType: 'MSISDN', partyId: '256772123456' },
      payerMessage: 'm',
      payeeNote: 'n',
    });
  });

  it('takes 409 as already requested, 400 as a refusal, 500 as worth a retry', async () => {
    let next = 409;
    const { fetchImpl } = scripted([
      (c) =>
        c.url.endsWith('/token/')
          ? { status: 200, body: { access_token: 't', expires_in: 3600 } }
          : undefined,
      () => ({ status: next, body: { code: next === 400 ? 'PAYER_NOT_FOUND' : 'X' } }),
    ]);
    const client = createMomoClient({ ...opts, fetch: fetchImpl });
    const r = {
      referenceId: 'r',
      amount: '1',
      currency: 'UGX',
      msisdn: '1',
      externalId: 'r',
      payerMessage: '',
      payeeNote: '',
    };
    expect(await client.requestToPay(r)).toEqual({ alreadyRequested: true });
    next = 400;
    await expect(client.requestToPay(r)).rejects.toBeInstanceOf(MomoRefusedError);
    next = 500;
    await expect(client.requestToPay(r)).rejects.not.toBeInstanceOf(MomoRefusedError);
  });

  it('normalises status answers (numbers as strings, old reason objects, 404)', async () => {
    let body: unknown = {
      status: 'SUCCESSFUL',
      amount: 15000,
      currency: 'UGX',
      financialTransactionId: 23503452,
    };
    let status = 200;
    const { fetchImpl } = scripted([
      (c) =>
        c.url.endsWith('/token/')
          ? { status: 200, body: { access_token: 't', expires_in: 3600 } }
          : undefined,
      () => ({ status, body }),
    ]);
    const source = momoStatusSource(createMomoClient({ ...opts, fetch: fetchImpl }));
    expect(await source.fetchStatus(payment())).toEqual({
      status: 'SUCCEEDED',
      receivedMinor: 15000,
      providerPaymentId: '23503452',
    });
    body = { status: 'SUCCESSFUL', amount: '15000', currency: 'EUR' };
    expect(await source.fetchStatus(payment())).toEqual({
      status: 'FAILED',
      failureCode: 'AMOUNT_MISMATCH',
      taken: { amount: '15000', currency: 'EUR' },
    });
    body = { status: 'FAILED', reason: { code: 'APPROVAL_REJECTED', message: 'no' } };
    expect(await source.fetchStatus(payment())).toEqual({
      status: 'FAILED',
      failureCode: 'APPROVAL_REJECTED',
    });
    body = { status: 'PENDING' };
    expect(await source.fetchStatus(payment())).toEqual({ status: 'PENDING' });
    status = 404;
    expect(await source.fetchStatus(payment())).toEqual({ status: 'PENDING' });
    status = 503;
    await expect(source.fetchStatus(payment())).rejects.toThrow(/HTTP 503/);
  });

  it('reads MoMo amounts exactly', () => {
    expect(momoAmountToMinor('15000', 'UGX')).toBe(15000);
    expect(momoAmountToMinor('10.50', 'EUR')).toBe(1050);
    expect(momoAmountToMinor('10.5', 'UGX')).toBeUndefined();
    expect(momoAmountToMinor('-5', 'UGX')).toBeUndefined();
    expect(momoAmountToMinor(null, 'UGX')).toBeUndefined();
  });
});

describe('Airtel client', () => {
  const opts = {
    baseUrl: 'http://airtel.test',
    clientId: 'cid',
    clientSecret: 'cs',
    country: 'UG',
    currency: 'UGX',
  };

  it('sends the documented collection, takes ESB000041 as already sent, and refuses on success:false', async () => {
    let answer: { status: number; body?: unknown } = {
      status: 200,
      body: {
        data: { transaction: { id: 'p', status: 'SUCCESS' } },
        status: { result_code: 'ESB000010', success: true },
      },
    };
    const { calls, fetchImpl } = scripted([
      (c) =>
        c.url.endsWith('/auth/oauth2/token')
          ? { status: 200, body: { access_token: 'at', expires_in: '180', token_type: 'bearer' } }
          : undefined,
      () => answer,
    ]);
    const client = createAirtelClient({ ...opts, fetch: fetchImpl });
    const c = { transactionId: 'p', amount: 5000, msisdn: '702123456', reference: 'Water plan' };
    expect(await client.collect(c)).toEqual({ alreadyRequested: false });
    expect(JSON.parse(calls[0]!.body!)).toEqual({
      client_id: 'cid',
      client_secret: 'cs',
      grant_type: 'client_credentials',
    });
    expect(calls[1]!.url).toBe('http://airtel.test/merchant/v1/payments/');
    expect(calls[1]!.headers).toMatchObject({
      Authorization: 'Bearer at',
      'X-Country': 'UG',
      'X-Currency': 'UGX',
    });
    expect(JSON.parse(calls[1]!.body!)).toEqual({
      reference: 'Water plan',
      subscriber: { country: 'UG', currency: 'UGX', msisdn: '702123456' },
      transaction: { amount: 5000, country: 'UG', currency: 'UGX', id: 'p' },
    });
    answer = { status: 200, body: { status: { result_code: 'ESB000041', success: false } } };
    expect(await client.collect(c)).toEqual({ alreadyRequested: true });
    answer = { status: 200, body: { status: { result_code: 'ESB000001', success: false } } };
    await expect(client.collect(c)).rejects.toBeInstanceOf(AirtelRefusedError);
    answer = { status: 502 };
    await expect(client.collect(c)).rejects.not.toBeInstanceOf(AirtelRefusedError);
  });

  it('maps enquiry statuses: TS settles the asked amount, TF/TE fail, TIP/TA wait', async () => {
    let status = 'TS';
    const { fetchImpl } = scripted([
      (c) =>
        c.url.endsWith('/auth/oauth2/token')
          ? { status: 200, body: { access_token: 'at', expires_in: '180' } }
          : undefined,
      (c) =>
        c.url.endsWith('/standard/v1/payments/pay-1')
          ? {
              status: 200,
              body: {
                data: { transaction: { id: 'pay-1', status, airtel_money_id: 'MP1' } },
                status: { success: true },
              },
            }
          : undefined,
    ]);
    const source = airtelStatusSource(createAirtelClient({ ...opts, fetch: fetchImpl }));
    expect(await source.fetchStatus(payment())).toEqual({
      status: 'SUCCEEDED',
      receivedMinor: 15000,
      providerPaymentId: 'MP1',
    });
    expect(await source.fetchStatus(payment({ currency: 'KES' }))).toMatchObject({
      status: 'FAILED',
      failureCode: 'AMOUNT_MISMATCH',
    });
    status = 'TF';
    expect(await source.fetchStatus(payment())).toMatchObject({
      status: 'FAILED',
      failureCode: 'AIRTEL_FAILED',
    });
    status = 'TE';
    expect(await source.fetchStatus(payment())).toMatchObject({
      status: 'FAILED',
      failureCode: 'AIRTEL_EXPIRED',
    });
    status = 'TIP';
    expect(await source.fetchStatus(payment())).toEqual({ status: 'PENDING' });
    status = 'TA';
    expect(await source.fetchStatus(payment())).toEqual({ status: 'PENDING' });
  });
});
