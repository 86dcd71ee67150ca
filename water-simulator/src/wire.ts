// The water kiosk firmware API as the kiosk sees it (CONTRACTS §11, "Kiosk firmware"): request
// and answer bodies of the five routes the ESP32-S3 calls with its own key as `X-API-Key`.

/** The earlier firmware's verification request; `user_id` is the phone number as typed. */
export interface VerificationRequest {
  kiosk_id: string;
  user_id: string;
  pin: string;
  volume_ml: number;
  timestamp: string | number;
}

export type VerificationCode =
  | 'VERIFIED'
  | 'UNKNOWN_CUSTOMER'
  | 'NOT_REGISTERED'
  | 'INACTIVE'
  | 'SUBSCRIPTION_EXPIRED'
  | 'INVALID_PIN'
  | 'PIN_LOCKED'
  | 'DAILY_LIMIT'
  | 'INSUFFICIENT_CREDIT'
  | 'KIOSK_NOT_ALLOWED';

export interface VerificationResponse {
  type: 'dispense_response';
  user_id: string;
  volume_ml: number;
  approved: boolean;
  reason: string;
  code: VerificationCode;
  authorization_id?: string;
  timestamp: string;
  kiosk_id: string;
  user_data?: {
    phone_number: string;
    account_id: string;
    full_name: string | null;
    active: boolean;
    credits: number;
    credits_ml: number;
    remaining_today_ml: number | null;
  };
}

export interface SettlementRequest {
  authorizationId: string;
  dispensedMl: number;
  kioskTxnId: string;
  tap?: number;
}

export interface SettlementResponse {
  ok: true;
  duplicate?: true;
  creditsMl: number;
}

/** One line of the kiosk's SD-card log, uploaded as is after an outage. */
export interface OfflineTransaction {
  kioskTxnId: string;
  userId: string;
  dispensedMl: number;
  at: string;
  tap?: number;
  authorizationId?: string;
}

export interface BatchResult {
  kioskTxnId: string;
  status: 'applied' | 'duplicate' | 'rejected';
  code?: string;
}

/** What the server lets the kiosk know about one customer it may serve offline. */
export interface CachedCustomer {
  accountId: string;
  phone: string;
  /** hex HMAC-SHA256(kiosk cache secret, "<accountId>:<pin>") */
  verifier: string;
  status: 'active' | 'inactive' | 'locked';
  subscriptionExpiresAt: string | null;
  creditsMl: number;
  dailyLimitMl: number | null;
  usedTodayMl: number;
}

export interface CredentialCacheResponse {
  kioskId: string;
  version: number;
  generatedAt: string;
  /** true: the whole cache (replace the copy); false: the changes after `since`. */
  full: boolean;
  customers: CachedCustomer[];
  /** accountIds no longer served offline. */
  removed: string[];
  signature: string;
}

export type TapStatus = 'idle' | 'dispensing' | 'fault';

export interface HeartbeatRequest {
  firmware: string;
  taps: { tap: number; status: TapStatus; totalMl?: number }[];
  signalDbm?: number;
  sdFreeMb?: number;
  cacheVersion?: number;
}

/** At most this many transactions in one batch upload. */
export const BATCH_MAX = 500;
