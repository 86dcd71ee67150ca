// Sign in with email and password, or with a pasted admin token.
import { useState } from 'react';
import { useAction } from '../action.ts';
import { useAuth } from '../auth.tsx';
import { ErrorNote, TextField } from '../ui.tsx';

export function SignInPage() {
  const { signIn, signInWithToken, signOutNotice } = useAuth();
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [adminToken, setAdminToken] = useState('');
  const { busy, error, run } = useAction();

  return (
    <main id="main" className="sign-in">
      <h1>Kioskhub</h1>
      <p className="muted">Operator dashboard: the fleet, the money and the problems, live.</p>
      {signOutNotice && (
        <p className="card notice" role="status">
          {signOutNotice}
        </p>
      )}
      <form className="card" onSubmit={run(() => signIn(email, password))} aria-labelledby="sign-in-title">
        <h2 id="sign-in-title">Sign in</h2>
        <TextField
          label="Email"
          type="email"
          autoComplete="username"
          required
          value={email}
          onChange={(e) => setEmail(e.target.value)}
        />
        <TextField
          label="Password"
          type="password"
          autoComplete="current-password"
          required
          value={password}
          onChange={(e) => setPassword(e.target.value)}
        />
        <button type="submit" className="primary" disabled={busy}>
          Sign in
        </button>
      </form>
      <form
        className="card"
        onSubmit={run(() => signInWithToken(adminToken.trim()))}
        aria-labelledby="token-title"
      >
        <h2 id="token-title">Or use a token</h2>
        <TextField
          label="Admin token"
          type="password"
          autoComplete="off"
          required
          value={adminToken}
          onChange={(e) => setAdminToken(e.target.value)}
        />
        <button type="submit" className="secondary" disabled={busy}>
          Use token
        </button>
      </form>
      <ErrorNote error={error} />
    </main>
  );
}
