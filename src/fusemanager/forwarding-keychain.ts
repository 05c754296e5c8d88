import type { AuthConfig, CredentialsKeeper, RememberOutcome } from '../cri/index.js';
import type { ManagedMounter } from './managed-mounter.js';

/**
 * The CRI proxy's keychain when a FUSE manager talks to the registries: the
 * daemon judges each PullImage's credentials as before (for its log line)
 * and passes them on to the manager, which keeps them for the layers' reads
 * (and so keeps them through a daemon restart).
 */
export function forwardingKeychain(local: CredentialsKeeper, mounter: ManagedMounter): CredentialsKeeper {
  return {
    remember(image: string, auth: AuthConfig | undefined): RememberOutcome {
      const outcome = local.remember(image, auth);
      // 'none' too: the manager forgets what an earlier pull of the image left.
      if (outcome === 'kept' || outcome === 'none') mounter.forwardCredentials({ image, auth: auth as unknown as Record<string, unknown> | undefined });
      return outcome;
    },
    forget(image: string): boolean {
      mounter.forgetCredentials(image);
      return local.forget(image);
    },
  };
}
