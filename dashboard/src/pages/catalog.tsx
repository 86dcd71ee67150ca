// Sites and products: create and edit them, adjust stock. Editing needs the admin role.
import { majorToMinor, type Page, type ProductView, type SiteView } from '@kioskhub/protocol';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { useAction } from '../action.ts';
import { api, qs } from '../api.ts';
import { useAuth } from '../auth.tsx';
import { useSites, useTenants } from '../data.ts';
import { minorToInput, money } from '../format.ts';
import { Columns, ErrorNote, Listing, Section, SelectField, TableWrap, TextField } from '../ui.tsx';

/** A price typed in major units → minor units of the site's currency (ISO 4217 decimals). */
function toMinor(major: string, currency: string): number {
  const minor = majorToMinor(Number(major), currency);
  if (minor === undefined) throw new Error(`${major} has more decimals than ${currency} allows`);
  return minor;
}

function TenantPicker({ value, onChange }: { value: string; onChange(v: string): void }) {
  const tenants = useTenants();
  if (!tenants.data) return null;
  return (
    <SelectField
      label="Tenant"
      value={value}
      onChange={(e) => onChange(e.target.value)}
      options={tenants.data.items.map((t) => ({ value: t.id, label: t.name }))}
    />
  );
}

function SiteRow({ site, editable }: { site: SiteView; editable: boolean }) {
  const { allTenants } = useAuth();
  const client = useQueryClient();
  const [editing, setEditing] = useState(false);
  const [name, setName] = useState(site.name);
  const [address, setAddress] = useState(site.address ?? '');
  const [phone, setPhone] = useState(site.phone ?? '');
  const action = useAction();
  if (!editing) {
    return (
      <tr data-site-id={site.id}>
        <th scope="row">{site.name}</th>
        <td>
          <code>{site.id}</code>
        </td>
        <td>{site.currency}</td>
        <td>{site.address ?? '—'}</td>
        <td>
          {editable && (
            <button
              type="button"
              className="secondary"
              aria-label={`Edit site ${site.name}`}
              onClick={() => setEditing(true)}
            >
              Edit
            </button>
          )}
        </td>
      </tr>
    );
  }
  return (
    <tr data-site-id={site.id}>
      <td colSpan={5}>
        <form
          className="inline-form"
          aria-label={`Edit site ${site.id}`}
          onSubmit={action.run(async () => {
            await api(`/v1/sites/${site.id}${qs({ tenantId: allTenants ? site.tenantId : undefined })}`, {
              method: 'PATCH',
              body: { name, address: address || null, phone: phone || null },
            });
            await client.invalidateQueries({ queryKey: ['sites'] });
            setEditing(false);
          })}
        >
          <TextField label="Name" required value={name} onChange={(e) => setName(e.target.value)} />
          <TextField label="Address" value={address} onChange={(e) => setAddress(e.target.value)} />
          <TextField label="Phone" value={phone} onChange={(e) => setPhone(e.target.value)} />
          <button type="submit" className="primary" disabled={action.busy}>
            Save site
          </button>
          <button type="button" className="secondary" onClick={() => setEditing(false)}>
            Cancel
          </button>
          <ErrorNote error={action.error} />
        </form>
      </td>
    </tr>
  );
}

function ProductRow({
  product,
  sites,
  editable,
}: {
  product: ProductView;
  sites: SiteView[];
  editable: boolean;
}) {
  const { allTenants } = useAuth();
  const client = useQueryClient();
  const site = sites.find((s) => s.id === product.siteId && s.tenantId === product.tenantId);
  const [price, setPrice] = useState(minorToInput(product.priceMinor, site?.currency ?? 'INR'));
  const [name, setName] = useState(product.name);
  const [editing, setEditing] = useState(false);
  const action = useAction();
  const patch = (body: Record<string, unknown>) =>
    api(
      `/v1/products/${encodeURIComponent(product.sku)}${qs({ tenantId: allTenants ? product.tenantId : undefined })}`,
      { method: 'PATCH', body },
    ).then(() => client.invalidateQueries({ queryKey: ['products'] }));
  const currency = site?.currency ?? 'INR';
  return (
    <tr data-sku={product.sku}>
      <th scope="row">
        {editing ? (
          <TextField label="Name" value={name} onChange={(e) => setName(e.target.value)} />
        ) : (
          product.name
        )}
      </th>
      <td>
        <code>{product.sku}</code>
      </td>
      <td>{site?.name ?? product.siteId}</td>
      <td className="num">
        {editing ? (
          <TextField
            label="Price"
            type="number"
            min="0"
            step="any"
            value={price}
            onChange={(e) => setPrice(e.target.value)}
          />
        ) : (
          money(product.priceMinor, currency)
        )}
      </td>
      <td className="num">
        <span aria-label={`Stock of ${product.name}`}>{product.stock ?? 'not tracked'}</span>
        {editable && (
          <span className="stepper">
            <button
              type="button"
              className="secondary"
              aria-label={`Remove one ${product.name} from stock`}
              disabled={action.busy || !product.stock}
              onClick={() => void action.run(() => patch({ stock: (product.stock ?? 0) - 1 }))()}
            >
              −1
            </button>
            <button
              type="button"
              className="secondary"
              aria-label={`Add one ${product.name} to stock`}
              disabled={action.busy}
              onClick={() => void action.run(() => patch({ stock: (product.stock ?? 0) + 1 }))()}
            >
              +1
            </button>
            <button
              type="button"
              className="secondary"
              aria-label={`Add ten ${product.name} to stock`}
              disabled={action.busy}
              onClick={() => void action.run(() => patch({ stock: (product.stock ?? 0) + 10 }))()}
            >
              +10
            </button>
          </span>
        )}
      </td>
      <td>
        {editable &&
          (editing ? (
            <>
              <button
                type="button"
                className="primary"
                onClick={() =>
                  void action.run(async () => {
                    await patch({ name, priceMinor: toMinor(price, currency) });
                    setEditing(false);
                  })()
                }
              >
                Save
              </button>
              <button type="button" className="secondary" onClick={() => setEditing(false)}>
                Cancel
              </button>
            </>
          ) : (
            <button
              type="button"
              className="secondary"
              aria-label={`Edit product ${product.name}`}
              onClick={() => setEditing(true)}
            >
              Edit
            </button>
          ))}
        <ErrorNote error={action.error} />
      </td>
    </tr>
  );
}

export function CatalogPage() {
  const { can, allTenants } = useAuth();
  const editable = can('manageCatalog');
  const client = useQueryClient();
  const sites = useSites();
  const products = useQuery({
    queryKey: ['products'],
    queryFn: () => api<Page<ProductView>>('/v1/products'),
  });
  const [tenantId, setTenantId] = useState('default');
  const [site, setSite] = useState({ id: '', name: '', currency: 'INR' });
  const [product, setProduct] = useState({ sku: '', name: '', price: '', siteId: 'default', stock: '' });
  const createSite = useAction();
  const createProduct = useAction();
  const siteList = sites.data?.items ?? [];
  const productCurrency = () =>
    siteList.find((s) => s.id === product.siteId && (!allTenants || s.tenantId === tenantId))?.currency ??
    'INR';

  /** Binds a text field to one key of a form's state. */
  const bind = <T extends Record<string, string>>(state: T, set: (next: T) => void, key: keyof T) => ({
    value: state[key],
    onChange: (e: { target: { value: string } }) => set({ ...state, [key]: e.target.value }),
  });

  return (
    <>
      <h1>Sites &amp; products</h1>
      <Section title="Sites">
        <Listing query={sites} count={siteList.length} empty="No sites.">
          {() => (
            <TableWrap label="Sites">
              <Columns names={['Name', 'Id', 'Currency', 'Address', { name: 'Actions', srOnly: true }]} />
              <tbody>
                {siteList.map((s) => (
                  <SiteRow key={`${s.tenantId}|${s.id}`} site={s} editable={editable} />
                ))}
              </tbody>
            </TableWrap>
          )}
        </Listing>
        {editable && (
          <form
            className="inline-form"
            aria-label="New site"
            onSubmit={createSite.run(async () => {
              await api('/v1/sites', {
                method: 'POST',
                body: {
                  id: site.id,
                  name: site.name,
                  currency: site.currency,
                  ...(allTenants ? { tenantId } : {}),
                },
              });
              setSite({ id: '', name: '', currency: site.currency });
              await client.invalidateQueries({ queryKey: ['sites'] });
            })}
          >
            <h3>New site</h3>
            {allTenants && <TenantPicker value={tenantId} onChange={setTenantId} />}
            <TextField
              label="Site id"
              required
              pattern="[A-Za-z0-9_\-]{1,64}"
              {...bind(site, setSite, 'id')}
            />
            <TextField label="Site name" required {...bind(site, setSite, 'name')} />
            <TextField
              label="Currency"
              required
              pattern="[A-Z]{3}"
              value={site.currency}
              onChange={(e) => setSite({ ...site, currency: e.target.value.toUpperCase() })}
            />
            <button type="submit" className="primary" disabled={createSite.busy}>
              Create site
            </button>
            <ErrorNote error={createSite.error} />
          </form>
        )}
      </Section>
      <Section title="Products">
        <Listing query={products} count={products.data?.items.length ?? 0} empty="No products.">
          {() => (
            <TableWrap label="Products">
              <Columns
                names={[
                  'Name',
                  'SKU',
                  'Site',
                  { name: 'Price', num: true },
                  { name: 'Stock', num: true },
                  { name: 'Actions', srOnly: true },
                ]}
              />
              <tbody>
                {products.data?.items.map((p) => (
                  <ProductRow
                    key={`${p.tenantId}|${p.sku}`}
                    product={p}
                    sites={siteList}
                    editable={editable}
                  />
                ))}
              </tbody>
            </TableWrap>
          )}
        </Listing>
        {editable && (
          <form
            className="inline-form"
            aria-label="New product"
            onSubmit={createProduct.run(async () => {
              await api('/v1/products', {
                method: 'POST',
                body: {
                  sku: product.sku,
                  name: product.name,
                  priceMinor: toMinor(product.price, productCurrency()),
                  siteId: product.siteId,
                  ...(product.stock !== '' ? { stock: Number(product.stock) } : {}),
                  ...(allTenants ? { tenantId } : {}),
                },
              });
              setProduct({ sku: '', name: '', price: '', siteId: product.siteId, stock: '' });
              await client.invalidateQueries({ queryKey: ['products'] });
            })}
          >
            <h3>New product</h3>
            {allTenants && <TenantPicker value={tenantId} onChange={setTenantId} />}
            <TextField
              label="SKU"
              required
              pattern="[A-Za-z0-9_.\-]{1,64}"
              {...bind(product, setProduct, 'sku')}
            />
            <TextField label="Product name" required {...bind(product, setProduct, 'name')} />
            <TextField
              label="Price"
              required
              type="number"
              min="0"
              step="any"
              {...bind(product, setProduct, 'price')}
            />
            <SelectField
              label="Product site"
              {...bind(product, setProduct, 'siteId')}
              options={siteList
                .filter((s) => !allTenants || s.tenantId === tenantId)
                .map((s) => ({ value: s.id, label: s.name }))}
            />
            <TextField
              label="Stock (empty: not tracked)"
              type="number"
              min="0"
              step="1"
              {...bind(product, setProduct, 'stock')}
            />
            <button type="submit" className="primary" disabled={createProduct.busy}>
              Create product
            </button>
            <ErrorNote error={createProduct.error} />
          </form>
        )}
      </Section>
    </>
  );
}
