"""sales path: postal addresses, salutation, title, language and customer numbers on contacts and companies;
products, opportunities, quotes and orders with their lines, number counters, deal links on the timeline,
events for the ERP, reminders of a deal, and outgoing mail written by staff

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 01:07:21.186936
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0011'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('type', sa.String(length=60), nullable=False),
    sa.Column('subject_type', sa.String(length=30), nullable=False),
    sa.Column('subject_id', sa.Integer(), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_events'))
    )
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_events_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_events_type'), ['type'], unique=False)

    op.create_table('number_counters',
    sa.Column('series', sa.String(length=20), nullable=False),
    sa.Column('year', sa.Integer(), nullable=False),
    sa.Column('last', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('series', 'year', name=op.f('pk_number_counters'))
    )
    op.create_table('products',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('number', sa.String(length=50), nullable=False),
    sa.Column('name', sa.String(length=300), nullable=False),
    sa.Column('search_name', sa.String(length=400), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('unit', sa.String(length=30), nullable=False),
    sa.Column('net_price', sa.Numeric(precision=16, scale=4), nullable=False),
    sa.Column('vat_rate', sa.Numeric(precision=5, scale=2), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_products')),
    sa.UniqueConstraint('number', name=op.f('uq_products_number'))
    )
    with op.batch_alter_table('products', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_products_search_name'), ['search_name'], unique=False)

    op.create_table('opportunities',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(length=300), nullable=False),
    sa.Column('contact_id', sa.Integer(), nullable=True),
    sa.Column('company_id', sa.Integer(), nullable=True),
    sa.Column('owner_id', sa.Integer(), nullable=True),
    sa.Column('amount', sa.Numeric(precision=14, scale=2), nullable=True),
    sa.Column('amount_from_quote', sa.Boolean(), nullable=False),
    sa.Column('close_date', sa.Date(), nullable=True),
    sa.Column('stage', sa.String(length=40), nullable=False),
    sa.Column('probability', sa.Integer(), nullable=False),
    sa.Column('source', sa.Enum('mail', 'call', 'web_form', 'campaign', 'manual', name='opportunity_source', native_enum=False, length=20), nullable=False),
    sa.Column('lost_reason', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_contact_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['company_id'], ['companies.id'], name=op.f('fk_opportunities_company_id_companies'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], name=op.f('fk_opportunities_contact_id_contacts'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['created_by_id'], ['staff_users.id'], name=op.f('fk_opportunities_created_by_id_staff_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['owner_id'], ['staff_users.id'], name=op.f('fk_opportunities_owner_id_staff_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_opportunities'))
    )
    with op.batch_alter_table('opportunities', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_opportunities_company_id'), ['company_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_opportunities_contact_id'), ['contact_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_opportunities_owner_id'), ['owner_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_opportunities_stage'), ['stage'], unique=False)

    op.create_table('interaction_opportunities',
    sa.Column('interaction_id', sa.Integer(), nullable=False),
    sa.Column('opportunity_id', sa.Integer(), nullable=False),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['interaction_id'], ['interactions.id'], name=op.f('fk_interaction_opportunities_interaction_id_interactions'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['opportunity_id'], ['opportunities.id'], name=op.f('fk_interaction_opportunities_opportunity_id_opportunities'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('interaction_id', 'opportunity_id', name=op.f('pk_interaction_opportunities'))
    )
    with op.batch_alter_table('interaction_opportunities', schema=None) as batch_op:
        batch_op.create_index('ix_interaction_opportunities_timeline', ['opportunity_id', 'occurred_at'], unique=False)

    op.create_table('quotes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('opportunity_id', sa.Integer(), nullable=False),
    sa.Column('number', sa.String(length=60), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('previous_id', sa.Integer(), nullable=True),
    sa.Column('state', sa.Enum('draft', 'final', 'sent', 'accepted', 'declined', 'superseded', name='quote_state', native_enum=False, length=20), nullable=False),
    sa.Column('contact_id', sa.Integer(), nullable=True),
    sa.Column('company_id', sa.Integer(), nullable=True),
    sa.Column('language', sa.String(length=5), nullable=False),
    sa.Column('quote_date', sa.Date(), nullable=True),
    sa.Column('valid_until', sa.Date(), nullable=True),
    sa.Column('intro', sa.Text(), nullable=True),
    sa.Column('terms', sa.Text(), nullable=True),
    sa.Column('address', sa.JSON(), nullable=False),
    sa.Column('net_total', sa.Numeric(precision=14, scale=2), nullable=False),
    sa.Column('vat_total', sa.Numeric(precision=14, scale=2), nullable=False),
    sa.Column('gross_total', sa.Numeric(precision=14, scale=2), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('sent_message_id', sa.String(length=998), nullable=True),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('decline_reason', sa.Text(), nullable=True),
    sa.Column('document_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['company_id'], ['companies.id'], name=op.f('fk_quotes_company_id_companies'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], name=op.f('fk_quotes_contact_id_contacts'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['created_by_id'], ['staff_users.id'], name=op.f('fk_quotes_created_by_id_staff_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['document_id'], ['interactions.id'], name=op.f('fk_quotes_document_id_interactions'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['opportunity_id'], ['opportunities.id'], name=op.f('fk_quotes_opportunity_id_opportunities'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['previous_id'], ['quotes.id'], name=op.f('fk_quotes_previous_id_quotes'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_quotes')),
    sa.UniqueConstraint('number', 'version', name='uq_quotes_number_version')
    )
    with op.batch_alter_table('quotes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_quotes_company_id'), ['company_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_quotes_contact_id'), ['contact_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_quotes_number'), ['number'], unique=False)
        batch_op.create_index(batch_op.f('ix_quotes_opportunity_id'), ['opportunity_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_quotes_sent_message_id'), ['sent_message_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_quotes_state'), ['state'], unique=False)

    op.create_table('orders',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('number', sa.String(length=60), nullable=False),
    sa.Column('quote_id', sa.Integer(), nullable=True),
    sa.Column('opportunity_id', sa.Integer(), nullable=True),
    sa.Column('contact_id', sa.Integer(), nullable=True),
    sa.Column('company_id', sa.Integer(), nullable=True),
    sa.Column('state', sa.Enum('open', 'handed_off', 'cancelled', name='order_state', native_enum=False, length=20), nullable=False),
    sa.Column('language', sa.String(length=5), nullable=False),
    sa.Column('order_date', sa.Date(), nullable=False),
    sa.Column('address', sa.JSON(), nullable=False),
    sa.Column('net_total', sa.Numeric(precision=14, scale=2), nullable=False),
    sa.Column('vat_total', sa.Numeric(precision=14, scale=2), nullable=False),
    sa.Column('gross_total', sa.Numeric(precision=14, scale=2), nullable=False),
    sa.Column('document_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['company_id'], ['companies.id'], name=op.f('fk_orders_company_id_companies'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], name=op.f('fk_orders_contact_id_contacts'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['created_by_id'], ['staff_users.id'], name=op.f('fk_orders_created_by_id_staff_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['document_id'], ['interactions.id'], name=op.f('fk_orders_document_id_interactions'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['opportunity_id'], ['opportunities.id'], name=op.f('fk_orders_opportunity_id_opportunities'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['quote_id'], ['quotes.id'], name=op.f('fk_orders_quote_id_quotes'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_orders')),
    sa.UniqueConstraint('number', name=op.f('uq_orders_number'))
    )
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_orders_company_id'), ['company_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_orders_contact_id'), ['contact_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_orders_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_orders_opportunity_id'), ['opportunity_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_orders_quote_id'), ['quote_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_orders_state'), ['state'], unique=False)

    op.create_table('quote_lines',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('quote_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('product_id', sa.Integer(), nullable=True),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('quantity', sa.Numeric(precision=14, scale=3), nullable=False),
    sa.Column('unit', sa.String(length=30), nullable=False),
    sa.Column('unit_price', sa.Numeric(precision=16, scale=4), nullable=False),
    sa.Column('discount_percent', sa.Numeric(precision=5, scale=2), nullable=False),
    sa.Column('vat_rate', sa.Numeric(precision=5, scale=2), nullable=False),
    sa.ForeignKeyConstraint(['product_id'], ['products.id'], name=op.f('fk_quote_lines_product_id_products'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['quote_id'], ['quotes.id'], name=op.f('fk_quote_lines_quote_id_quotes'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_quote_lines'))
    )
    with op.batch_alter_table('quote_lines', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_quote_lines_quote_id'), ['quote_id'], unique=False)

    op.create_table('order_lines',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('order_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('product_id', sa.Integer(), nullable=True),
    sa.Column('product_number', sa.String(length=50), nullable=True),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('quantity', sa.Numeric(precision=14, scale=3), nullable=False),
    sa.Column('unit', sa.String(length=30), nullable=False),
    sa.Column('unit_price', sa.Numeric(precision=16, scale=4), nullable=False),
    sa.Column('discount_percent', sa.Numeric(precision=5, scale=2), nullable=False),
    sa.Column('vat_rate', sa.Numeric(precision=5, scale=2), nullable=False),
    sa.Column('net', sa.Numeric(precision=14, scale=2), nullable=False),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_order_lines_order_id_orders'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['product_id'], ['products.id'], name=op.f('fk_order_lines_product_id_products'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_order_lines'))
    )
    with op.batch_alter_table('order_lines', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_order_lines_order_id'), ['order_id'], unique=False)

    with op.batch_alter_table('companies', schema=None) as batch_op:
        batch_op.add_column(sa.Column('customer_number', sa.String(length=50), nullable=True))
        batch_op.add_column(sa.Column('street', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('postcode', sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column('city', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('country', sa.String(length=2), nullable=True))
        batch_op.add_column(sa.Column('delivery_street', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('delivery_postcode', sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column('delivery_city', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('delivery_country', sa.String(length=2), nullable=True))
        batch_op.create_index(batch_op.f('ix_companies_customer_number'), ['customer_number'], unique=False)
        batch_op.create_index(batch_op.f('ix_companies_postcode'), ['postcode'], unique=False)

    with op.batch_alter_table('contacts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('salutation', sa.Enum('frau', 'herr', 'none', name='salutation', native_enum=False, length=20), nullable=True))
        batch_op.add_column(sa.Column('title', sa.String(length=50), nullable=True))
        batch_op.add_column(sa.Column('language', sa.String(length=5), nullable=True))
        batch_op.add_column(sa.Column('customer_number', sa.String(length=50), nullable=True))
        batch_op.add_column(sa.Column('street', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('postcode', sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column('city', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('country', sa.String(length=2), nullable=True))
        batch_op.create_index(batch_op.f('ix_contacts_customer_number'), ['customer_number'], unique=False)
        batch_op.create_index(batch_op.f('ix_contacts_postcode'), ['postcode'], unique=False)

    with op.batch_alter_table('outgoing_mail', schema=None) as batch_op:
        batch_op.add_column(sa.Column('interaction_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('from_name', sa.String(length=200), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_outgoing_mail_interaction_id_interactions'), 'interactions', ['interaction_id'], ['id'], ondelete='SET NULL')

    with op.batch_alter_table('reminders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('opportunity_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_reminders_opportunity_id'), ['opportunity_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_reminders_opportunity_id_opportunities'), 'opportunities', ['opportunity_id'], ['id'], ondelete='SET NULL')



def downgrade() -> None:
    with op.batch_alter_table('reminders', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_reminders_opportunity_id_opportunities'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_reminders_opportunity_id'))
        batch_op.drop_column('opportunity_id')

    with op.batch_alter_table('outgoing_mail', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_outgoing_mail_interaction_id_interactions'), type_='foreignkey')
        batch_op.drop_column('from_name')
        batch_op.drop_column('interaction_id')

    with op.batch_alter_table('contacts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_contacts_postcode'))
        batch_op.drop_index(batch_op.f('ix_contacts_customer_number'))
        batch_op.drop_column('country')
        batch_op.drop_column('city')
        batch_op.drop_column('postcode')
        batch_op.drop_column('street')
        batch_op.drop_column('customer_number')
        batch_op.drop_column('language')
        batch_op.drop_column('title')
        batch_op.drop_column('salutation')

    with op.batch_alter_table('companies', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_companies_postcode'))
        batch_op.drop_index(batch_op.f('ix_companies_customer_number'))
        batch_op.drop_column('delivery_country')
        batch_op.drop_column('delivery_city')
        batch_op.drop_column('delivery_postcode')
        batch_op.drop_column('delivery_street')
        batch_op.drop_column('country')
        batch_op.drop_column('city')
        batch_op.drop_column('postcode')
        batch_op.drop_column('street')
        batch_op.drop_column('customer_number')

    with op.batch_alter_table('order_lines', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_order_lines_order_id'))

    op.drop_table('order_lines')
    with op.batch_alter_table('quote_lines', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_quote_lines_quote_id'))

    op.drop_table('quote_lines')
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_orders_state'))
        batch_op.drop_index(batch_op.f('ix_orders_quote_id'))
        batch_op.drop_index(batch_op.f('ix_orders_opportunity_id'))
        batch_op.drop_index(batch_op.f('ix_orders_created_at'))
        batch_op.drop_index(batch_op.f('ix_orders_contact_id'))
        batch_op.drop_index(batch_op.f('ix_orders_company_id'))

    op.drop_table('orders')
    with op.batch_alter_table('quotes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_quotes_state'))
        batch_op.drop_index(batch_op.f('ix_quotes_sent_message_id'))
        batch_op.drop_index(batch_op.f('ix_quotes_opportunity_id'))
        batch_op.drop_index(batch_op.f('ix_quotes_number'))
        batch_op.drop_index(batch_op.f('ix_quotes_contact_id'))
        batch_op.drop_index(batch_op.f('ix_quotes_company_id'))

    op.drop_table('quotes')
    with op.batch_alter_table('interaction_opportunities', schema=None) as batch_op:
        batch_op.drop_index('ix_interaction_opportunities_timeline')

    op.drop_table('interaction_opportunities')
    with op.batch_alter_table('opportunities', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_opportunities_stage'))
        batch_op.drop_index(batch_op.f('ix_opportunities_owner_id'))
        batch_op.drop_index(batch_op.f('ix_opportunities_contact_id'))
        batch_op.drop_index(batch_op.f('ix_opportunities_company_id'))

    op.drop_table('opportunities')
    with op.batch_alter_table('products', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_products_search_name'))

    op.drop_table('products')
    op.drop_table('number_counters')
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_events_type'))
        batch_op.drop_index(batch_op.f('ix_events_created_at'))

    op.drop_table('events')
