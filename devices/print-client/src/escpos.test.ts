import { describe, expect, it } from 'vitest';
import { encodeText, printable } from './escpos.js';
import { parseReceipt, ReceiptError, type Receipt } from './receipt.js';
import { formatAmount, formatDate, renderReceipt, wrap } from './receipt-layout.js';

const receipt: Receipt = {
  restaurantName: 'Burger Manila',
  restaurantAddress: '1 Rizal Ave',
  restaurantPhone: '',
  orderNumber: 'A-0001',
  orderDate: '2026-03-01T04:05:00.000Z',
  customerName: 'Niño',
  items: [
    { productName: 'Burger', quantity: 1, lineTotal: 150 },
    { productName: 'Cola', quantity: 2, lineTotal: 100 },
  ],
  subTotal: 223.21,
  tax: 26.79,
  totalAmount: 250,
  paymentMethod: 'Cash',
  amountPaid: 300,
  change: 50,
};

const ascii = (text: string) => [...Buffer.from(text, 'latin1')];
const line = (text: string) => [...ascii(text), 0x0a];

describe('ESC/POS receipt', () => {
  it('renders a small receipt to these exact bytes', () => {
    const expected = [
      ...[0x1b, 0x40], // ESC @ init
      ...[0x1b, 0x74, 0x00], // ESC t 0: code page 437
      ...[0x1b, 0x61, 0x01], // centre
      ...[0x1b, 0x45, 0x01], // bold on
      ...[0x1d, 0x21, 0x11], // double width and height
      ...line('Burger Manila'),
      ...[0x1d, 0x21, 0x00], // normal size
      ...[0x1b, 0x45, 0x00], // bold off
      ...line('1 Rizal Ave'),
      ...line('================================'),
      ...[0x1b, 0x61, 0x00], // left
      ...[0x1b, 0x45, 0x01],
      ...line('Order #: A-0001'),
      ...[0x1b, 0x45, 0x00],
      ...line('Date: 2026-03-01 04:05'),
      ...ascii('Customer: Ni'),
      0xa4,
      ...line('o'), // ñ in code page 437
      ...line('--------------------------------'),
      ...line('Item              Qty     Amount'),
      ...line('Burger              1     150.00'),
      ...line('Cola                2     100.00'),
      ...line('--------------------------------'),
      ...line('Subtotal                  223.21'),
      ...line('VAT (incl.)                26.79'),
      ...[0x1b, 0x45, 0x01],
      ...[0x1d, 0x21, 0x01], // double height
      ...line('TOTAL                 PHP 250.00'),
      ...[0x1d, 0x21, 0x00],
      ...[0x1b, 0x45, 0x00],
      ...line('--------------------------------'),
      ...line('Payment                     Cash'),
      ...line('Paid                  PHP 300.00'),
      ...[0x1b, 0x45, 0x01],
      ...line('Change                 PHP 50.00'),
      ...[0x1b, 0x45, 0x00],
      ...[0x1b, 0x61, 0x01],
      ...line(''),
      ...line('Thank you!'),
      ...line('Please come again'),
      ...[0x1b, 0x64, 0x03], // feed 3 lines
      ...[0x1d, 0x56, 0x42, 0x00], // GS V 66 0: feed to the cutter and cut
    ];
    expect([...renderReceipt(receipt, { columns: 32, currencyLabel: 'PHP', timeZone: 'UTC' })]).toEqual(
      expected,
    );
  });

  it('keeps every line within the paper width, wrapping long names', () => {
    const long = {
      ...receipt,
      restaurantName: 'The Very Long Name Burger House of Manila',
      items: [{ productName: 'Double cheeseburger with extra pickles', quantity: 12, lineTotal: 12_345.5 }],
    };
    const text = renderReceipt(long, { columns: 32, currencyLabel: 'PHP', timeZone: 'Asia/Manila' }).toString(
      'latin1',
    );
    const printedLines = text.replace(/\x1b@|\x1b[taEd][\s\S]|\x1d![\s\S]|\x1dVB[\s\S]/g, '').split('\n');
    expect(printedLines.slice(0, 3)).toEqual(['The Very Long', 'Name Burger', 'House of Manila']);
    expect(printedLines).toEqual(
      expect.arrayContaining(['Double             12  12,345.50', 'cheeseburger', 'with extra', 'pickles']),
    );
    expect(printedLines).toContain('Date: 2026-03-01 12:05');
    for (const printed of printedLines) expect(printed.length).toBeLessThanOrEqual(32);
  });

  it('prints a tip on its own line, between the goods and the total', () => {
    const tipped = parseReceipt({ ...receipt, tip: 25, totalAmount: 275 });
    expect(tipped.tip).toBe(25);
    const text = renderReceipt(tipped, { columns: 32, currencyLabel: 'PHP', timeZone: 'UTC' }).toString(
      'latin1',
    );
    const printedLines = text.replace(/\x1b@|\x1b[taEd][\s\S]|\x1d![\s\S]|\x1dVB[\s\S]/g, '').split('\n');
    const at = (l: string) => printedLines.indexOf(l);
    expect(at('Tip                        25.00')).toBeGreaterThan(at('VAT (incl.)                26.79'));
    expect(at('TOTAL                 PHP 275.00')).toBeGreaterThan(at('Tip                        25.00'));
    expect(
      renderReceipt(receipt, { columns: 32, currencyLabel: 'PHP', timeZone: 'UTC' }).toString('latin1'),
    ).not.toContain('Tip');
  });

  it('prints text in code page 437 with ₱ as PHP', () => {
    expect(printable('₱100 — “ok”… Señor Café')).toBe('PHP100 - "ok"... Señor Café');
    expect(encodeText('é ñ Ñ ü')).toEqual([0x82, 0x20, 0xa4, 0x20, 0xa5, 0x20, 0x81]);
    expect(encodeText('Łódź 日本\n')).toEqual([0x3f, 0xa2, ...ascii('dz ??')]); // ó is in code page 437, Ł is not
  });

  it('formats amounts and dates exactly', () => {
    expect(formatAmount(26.79)).toBe('26.79');
    expect(formatAmount(1250.5)).toBe('1,250.50');
    expect(formatAmount(0.1 + 0.2)).toBe('0.30');
    expect(formatAmount(-5)).toBe('-5.00');
    expect(formatAmount(5000, 0)).toBe('5,000');
    expect(formatAmount(1.255, 3)).toBe('1.255');
    expect(formatAmount(1234.5, 3)).toBe('1,234.500');
    expect(formatDate('2026-03-01T20:05:00Z', 'Asia/Manila')).toBe('2026-03-02 04:05');
    expect(formatDate('not a date')).toBe('not a date');
    expect(wrap('a bb ccc dddddddddd', 5)).toEqual(['a bb', 'ccc', 'ddddd', 'ddddd']);
  });

  it('refuses a receipt without the fields it needs', () => {
    expect(() => parseReceipt({ items: [] })).toThrow(ReceiptError);
    expect(() =>
      parseReceipt({
        orderNumber: 'A',
        items: [{ productName: 'x', quantity: 'two', lineTotal: 1 }],
        totalAmount: 1,
      }),
    ).toThrow(/quantity/);
    expect(parseReceipt({ orderNumber: 'A', items: [], totalAmount: 5, change: null })).toMatchObject({
      orderNumber: 'A',
      totalAmount: 5,
      subTotal: 0,
      restaurantName: '',
    });
  });
});
