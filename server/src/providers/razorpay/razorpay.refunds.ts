// A Razorpay refund's status (GET /v1/refunds/{id}) as the news its webhook would bring, for the
// status checks of refunds Razorpay answered pending (modules/payments/refund-polls.ts).
import type { ProviderRefundNews } from '../../modules/payments/refunds.js';
import { RefundLookupFailedError } from '../../modules/payments/refunds.js';
import { isRazorpayRefusal, RazorpayApiError, type RazorpayClient } from './razorpay.api.js';

/**
 * `processed` and `failed` are final; `pending` (and `created`, which the Refunds API may show
 * first) not yet. A 4xx but 408/429 (an unknown refund, keys it does not take), an entity it cannot
 * read or another status is `RefundLookupFailedError`: asking again gets the same. No answer, a
 * 5xx, 408 or 429 throws as it is: asked again.
 */
export async function fetchRazorpayRefundNews(
  api: Pick<RazorpayClient, 'fetchRefund'>,
  refundId: string,
): Promise<ProviderRefundNews> {
  let refund;
  try {
    refund = await api.fetchRefund(refundId);
  } catch (err) {
    if (isRazorpayRefusal(err) || (err instanceof RazorpayApiError && err.kind === 'bad_response'))
      throw new RefundLookupFailedError(err.message);
    throw err;
  }
  const status = refund.status;
  const outcome =
    status === 'processed' || status === 'failed'
      ? status
      : status === 'pending' || status === 'created'
        ? ('pending' as const)
        : undefined;
  if (!outcome)
    throw new RefundLookupFailedError(
      `Razorpay answered refund ${refund.id} with status "${status.slice(0, 40)}", not pending, processed or failed`,
    );
  return {
    provider: 'razorpay',
    providerRefundId: refund.id,
    providerPaymentId: refund.paymentId,
    amountMinor: refund.amountPaise,
    outcome,
    error: `Razorpay failed refund ${refund.id} (GET /v1/refunds/${refund.id}, status ${status})`,
    ...(refund.refundId !== null ? { refundId: refund.refundId } : {}),
  };
}
