// What the operator dashboard sees of water kiosks: the overview, the verification feed and the
// water charts (docs/water-dashboard.md), and the live event the kiosk page follows.

/** `water_verification`: one PIN check at a kiosk, approved or denied with its code. */
export interface WaterVerificationEvent {
  tenantId?: string;
  kioskId: string;
  customerId: string | null;
  approved: boolean;
  code: string;
  volumeMl: number;
}

export type WaterKioskStatus = 'ONLINE' | 'OFFLINE';

export interface WaterTapView {
  tap: number;
  status: string;
  /** Whether the status is a fault (anything but ok/idle/dispensing…); raises an alert. */
  fault: boolean;
  totalMl: number | null;
}

export interface WaterKioskOverview {
  kioskId: string;
  name: string;
  siteId: string;
  /** ONLINE: a heartbeat in the last 5 minutes. */
  status: WaterKioskStatus;
  firmware: string | null;
  lastHeartbeatAt: string | null;
  cacheVersion: number | null;
  signalDbm: number | null;
  sdFreeMb: number | null;
  taps: WaterTapView[];
  /** Dispensed today (the UTC day, or that of the timeZone asked for), in millilitres. */
  dispensedTodayMl: number;
  approvalsToday: number;
  denialsToday: number;
}

export interface WaterVerificationView {
  id: string;
  kioskId: string;
  customerId: string | null;
  /** The customer's account id (`TSF…`) and name, when the phone matched a customer. */
  customerAccountId: string | null;
  customerName: string | null;
  approved: boolean;
  code: string;
  /** Human text for the code (the denial reason). */
  reason: string;
  volumeMl: number;
  at: string;
}

export interface WaterStatsView {
  from: string;
  to: string;
  /** Litres per day, UTC or of the timeZone asked for (dispensed, settled and offline uploads). */
  litresPerDay: { day: string; litres: number; dispenses: number }[];
  /** Verifications per code: VERIFIED is the approvals, the rest are denials by reason. */
  verificationsByCode: { code: string; reason: string; approved: boolean; count: number }[];
  /** Plan payments that succeeded, per plan and currency. */
  revenueByPlan: {
    planId: string;
    planName: string | null;
    currency: string;
    /** ISO 4217 exponent of the currency (2: cents, 0: UGX). */
    exponent: number;
    amountMinor: number;
    payments: number;
  }[];
}
