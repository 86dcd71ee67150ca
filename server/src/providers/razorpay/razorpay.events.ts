// Razorpay-shaped `qr_code.credited` events (PROVIDERS.md §1.2), for the demo's payment
// generator, benchmarks and tests: one builder so they all send what Razorpay sends.

export interface QrCreditedOptions {
  qrCodeId: string;
  amountPaise: number;
  paymentId: string;
  accountId?: string;
  notes?: Record<string, string>;
}

export function qrCreditedEvent(o: QrCreditedOptions) {
  const now = Math.floor(Date.now() / 1000);
  return {
    entity: 'event',
    account_id: o.accountId ?? 'acc_TEST0000000001',
    event: 'qr_code.credited',
    contains: ['payment', 'qr_code'],
    payload: {
      payment: {
        entity: {
          id: o.paymentId,
          entity: 'payment',
          amount: o.amountPaise,
          currency: 'INR',
          status: 'captured',
          order_id: null,
          invoice_id: null,
          international: false,
          method: 'upi',
          amount_refunded: 0,
          refund_status: null,
          captured: true,
          description: 'QRv2 Payment',
          vpa: 'gauri.kumar@okhdfcbank',
          email: 'gauri.kumar@example.com',
          contact: '+919999999999',
          notes: o.notes ?? {},
          fee: 0,
          tax: 0,
          acquirer_data: { rrn: String(100_000_000_000 + (now % 900_000_000_000)) },
          created_at: now,
        },
      },
      qr_code: {
        entity: {
          id: o.qrCodeId,
          entity: 'qr_code',
          created_at: now - 3600,
          name: 'Vending',
          usage: 'multiple_use',
          type: 'upi_qr',
          image_url: 'https://rzp.io/i/BWcUVrLp',
          payment_amount: o.amountPaise,
          status: 'active',
          description: 'Vending machine',
          fixed_amount: true,
          payments_amount_received: 0,
          payments_count_received: 0,
          notes: o.notes ?? {},
          customer_id: null,
          close_by: null,
          closed_at: null,
          close_reason: null,
        },
      },
    },
    created_at: now,
  };
}
